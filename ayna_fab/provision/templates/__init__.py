"""The systemd unit templates that provision/unitfiles.py renders."""
