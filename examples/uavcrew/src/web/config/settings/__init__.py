"""Settings modules: ``base`` (shared), ``production`` (servers), ``development``."""
