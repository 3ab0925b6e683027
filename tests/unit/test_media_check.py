"""Check refuses a release whose uploads would land inside it (hostprog/django_steps.py): MEDIA_ROOT
or the default storage's location under the release is lost with the next deploy, while the
release's `media` link leads to the shared media directory every release links."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from ayna_fab.hostprog import django_steps

# Django as far as check reads it: settings, the default storage, `check` itself.
STAND_IN = {
    "django/__init__.py": "def setup():\n    pass\n",
    "django/core/__init__.py": "",
    "django/core/management/__init__.py": "def call_command(name, **kw):\n    pass\n",
    "django/core/files/__init__.py": "",
    "django/core/files/storage.py": textwrap.dedent("""
        import os
        from django.conf import settings

        class FileSystemStorage:
            def __init__(self, location=None):
                self.location = os.path.abspath(settings.MEDIA_ROOT if location is None else location)

        class ElsewhereStorage:
            location = "bucket/prefix"

        class InvalidStorageError(Exception):
            pass

        class _Lazy:   # Django's default_storage: built when first used, from STORAGES["default"]
            def __getattribute__(self, name):
                kind = os.environ.get("STORAGE", "fs")
                if kind == "none":
                    raise InvalidStorageError("Could not find config for 'default' in settings.STORAGES.")
                made = {"fs": FileSystemStorage, "elsewhere": ElsewhereStorage}[kind](
                    *([os.environ["LOCATION"]] if os.environ.get("LOCATION") else []))
                return getattr(made, name)

        default_storage = _Lazy()
        """),
    "django/apps.py": textwrap.dedent("""
        import os

        class _Field:
            def __init__(self, cls, name):
                self.__class__, self.name = cls, name

        class _Meta:
            label = "shop.Product"

            def get_fields(self):
                from django.db.models import CharField, FileField
                kinds = {"file": FileField, "char": CharField}
                return [_Field(kinds[k], f"{k}_field") for k in os.environ.get("FIELDS", "char").split(",")]

        class _Model:
            _meta = _Meta()

        class apps:
            get_models = staticmethod(lambda: [_Model])
        """),
    "django/db/__init__.py": "",
    "django/db/models.py": "class FileField:\n    pass\n\nclass CharField:\n    pass\n",
    "django/conf.py": textwrap.dedent("""
        import os

        class settings:
            DEBUG = False
            MEDIA_ROOT = os.environ.get("MEDIA_ROOT_IS", "")
        """),
}


def release(tmp_path: Path) -> Path:
    """root/releases/v3 with a Django directory, and its media link to root/shared/media."""
    rel = tmp_path / "releases" / "v3"
    (rel / "site").mkdir(parents=True)
    (tmp_path / "shared" / "media").mkdir(parents=True)
    (rel / "media").symlink_to(tmp_path / "shared" / "media")
    for name, text in STAND_IN.items():
        (rel / "site" / name).parent.mkdir(parents=True, exist_ok=True)
        (rel / "site" / name).write_text(text)
    return rel


def check(rel: Path, **env: str) -> subprocess.CompletedProcess:
    args = {"steps": ["check"], "django": True, "fail_level": "ERROR", "asgi_app": None, "asgi_dir": None,
            "release": str(rel)}
    return subprocess.run([sys.executable, "-c", Path(django_steps.__file__).read_text(), json.dumps(args)],
                          cwd=rel / "site", capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **env})


def test_media_root_inside_the_release_is_refused_at_check_with_the_fix(tmp_path):
    rel = release(tmp_path)
    p = check(rel, MEDIA_ROOT_IS=str(rel / "site" / "media"))
    assert p.returncode == 1 and "@@step check" in p.stdout and "failed" in p.stdout.splitlines()[-1], p.stdout
    said = p.stdout
    assert f"MEDIA_ROOT resolves to {rel / 'site' / 'media'}, inside the release" in said
    assert f"MEDIA_ROOT={(tmp_path / 'shared' / 'media').resolve()}" in said
    assert 'MEDIA_ROOT = os.environ.get("MEDIA_ROOT"' in said and "Traceback" not in said


def test_media_root_through_the_releases_media_link_or_elsewhere_passes(tmp_path):
    rel = release(tmp_path)
    for where in (rel / "media", tmp_path / "shared" / "media", tmp_path / "elsewhere"):
        p = check(rel, MEDIA_ROOT_IS=str(where))
        assert p.returncode == 0 and p.stdout.strip().endswith("ok"), (where, p.stdout, p.stderr)


def test_a_default_storage_kept_inside_the_release_is_refused_even_with_media_root_unset(tmp_path):
    rel = release(tmp_path)
    p = check(rel, LOCATION="uploads")     # relative: under the Django directory, in the release
    assert p.returncode == 1 and "the default storage's location resolves to" in p.stdout, p.stdout
    # unset MEDIA_ROOT with Django's default storage and no model keeping files: a note with the fix
    p = check(rel)
    assert p.returncode == 0 and "MEDIA_ROOT is unset: a file saved through the default storage would land in" in p.stdout
    assert "@@note check" in p.stdout and f"MEDIA_ROOT={(tmp_path / 'shared' / 'media').resolve()}" in p.stdout
    # a storage that is not this disk's (a bucket) is not a place in the release
    assert check(rel, STORAGE="elsewhere", MEDIA_ROOT_IS=str(tmp_path / "shared" / "media")).returncode == 0


def test_inside_reads_links_and_never_matches_a_sibling_by_prefix(tmp_path):
    rel = release(tmp_path)
    assert django_steps.inside(rel / "site" / "media", rel) and django_steps.inside(rel, rel)
    assert not django_steps.inside(rel / "media" / "x", rel)
    assert not django_steps.inside(tmp_path / "releases" / "v30", rel)


def test_media_root_unset_with_a_model_that_keeps_files_is_refused(tmp_path):
    rel = release(tmp_path)
    p = check(rel, FIELDS="char,file")
    assert p.returncode == 1, p.stdout
    assert "MEDIA_ROOT is unset (shop.Product.file_field keep files), so the default storage's location " \
           f"resolves to {(rel / 'site').resolve()}, inside the release" in p.stdout
    assert check(rel, FIELDS="char,file", MEDIA_ROOT_IS=str(rel / "media")).returncode == 0


def test_no_default_storage_at_all_is_no_place_for_uploads(tmp_path):
    rel = release(tmp_path)
    p = check(rel, STORAGE="none", FIELDS="char")     # STORAGES without "default": nothing is saved
    assert p.returncode == 0 and "MEDIA_ROOT" not in p.stdout, p.stdout
