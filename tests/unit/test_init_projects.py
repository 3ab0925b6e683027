"""fab init on projects as they are found: a settings package with base/dev/production, a
Dockerfile, a Procfile, django-environ, python-decouple, `from .base import *`, uv.lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from ayna_fab.scan import envreads, healthurl, project as projectinit, settingsmodule, wheels
from ayna_fab.scan import python as pyversion
from ayna_fab.scan.settingsmodule import module_path

REPO = Path(__file__).resolve().parents[2]

BAKERY = {
    "manage.py": 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakery.settings.dev")\n',
    "bakery/__init__.py": "",
    "bakery/wsgi.py": 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakery.settings.dev")\n',
    "bakery/urls.py": textwrap.dedent('''
        from django.contrib import admin
        from django.urls import include, path
        urlpatterns = [path("django-admin/", admin.site.urls), path("admin/", include(wagtailadmin_urls)),
                       path("", include(wagtail_urls))]
        '''),
    "bakery/settings/__init__.py": "",
    "bakery/settings/base.py": textwrap.dedent('''
        import os
        import dj_database_url
        PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        BASE_DIR = os.path.dirname(PROJECT_DIR)
        DEBUG = False
        ROOT_URLCONF = "bakery.urls"
        INSTALLED_APPS = ["django.contrib.staticfiles"]
        if "DATABASE_URL" in os.environ:
            DATABASES = {"default": dj_database_url.config(conn_max_age=500)}
        else:
            DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
        ADMIN_PASSWORD = os.environ.get("ADMIN_PASSWORD", "changeme")
        CSP_DEFAULT_SRC = os.environ.get("CSP_DEFAULT_SRC", "'self'").split(",")
        STATIC_ROOT = os.path.join(PROJECT_DIR, "collect_static")
        MEDIA_ROOT = os.path.join(PROJECT_DIR, "media")
        '''),
    "bakery/settings/dev.py": "from .base import *\nDEBUG = True\nSECRET_KEY = 'dev'\nDEV_ONLY = os.environ['DEV_ONLY']\n",
    "bakery/settings/production.py": textwrap.dedent('''
        import os
        from .base import *
        SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
        ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "*").split(",")
        PRIMARY_HOST = os.environ["PRIMARY_HOST"]
        AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME")
        if "REDIS_URL" in os.environ:
            CACHES = {"default": {"LOCATION": os.environ["REDIS_URL"] + "/0"}}
        '''),
    "Dockerfile": "FROM python:3.12-slim\nENV PYTHONUNBUFFERED=1 \\\n    DJANGO_SETTINGS_MODULE=bakery.settings.production \\\n"
                  "    SITE_REGION=eu\nCMD gunicorn bakery.wsgi\n",
    "Procfile": "web: gunicorn bakery.wsgi:application\n",
    "runtime.txt": "python-3.12.4\n",
    "requirements/base.txt": "Django>=4.2\nwagtail\ndj-database-url\n",
    "requirements/production.txt": "-r base.txt\ngunicorn\nuwsgi\npsycopg2\n",
    "requirements.txt": "-r requirements/production.txt\n",
    ".env.example": "DJANGO_SECRET_KEY=change-me\nSENTRY_DSN=\nSITE_NAME=Bakery\n",
}


def tree(root: Path, files: dict[str, str], drop: tuple[str, ...] = ()) -> Path:
    for name, text in files.items():
        if name not in drop:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
    return root


@pytest.fixture
def bakery(tmp_path):
    return tree(tmp_path / "bakery-site", BAKERY)


def env_lines(found, generate=False):
    plan = projectinit.plan(found, hosts_dir=found.root.parent)
    return projectinit.env_text(plan, generate=generate).splitlines()


def value(lines, key):
    return next(ln.split("=", 1)[1] for ln in lines if ln.startswith(key + "="))


def comment(lines, key):
    i = next(i for i, ln in enumerate(lines) if ln.split("=", 1)[0].lstrip("#") == key)
    return lines[i - 1]


# --- 1. production settings, and why ---------------------------------------------------------------

def test_init_takes_the_settings_the_dockerfile_sets_over_manage_pys_dev_default(bakery):
    found = projectinit.inspect(bakery)
    assert (found.settings_module, found.settings_why) == ("bakery.settings.production", "Dockerfile sets it")
    assert value(env_lines(found), "DJANGO_SETTINGS_MODULE") == "bakery.settings.production"


@pytest.mark.parametrize("files,why", [
    ({"Procfile": "web: DJANGO_SETTINGS_MODULE=bakery.settings.production gunicorn bakery.wsgi\n"}, "Procfile sets it"),
    ({"Procfile": "release: python manage.py migrate --settings=bakery.settings.production\n"}, "Procfile sets it"),
    ({"app.json": '{"env": {"DJANGO_SETTINGS_MODULE": {"value": "bakery.settings.production"}}}'}, "app.json sets it"),
    ({"heroku.yml": "build:\n  config:\n    DJANGO_SETTINGS_MODULE: bakery.settings.production\n"}, "heroku.yml sets it"),
    ({}, "bakery/settings/production.py exists (manage.py's default is bakery.settings.dev)"),
])
def test_init_says_which_file_chose_the_production_settings(tmp_path, files, why):
    root = tree(tmp_path / "p", {**BAKERY, **files}, drop=tuple({"Dockerfile", "Procfile"} - set(files)))
    found = projectinit.inspect(root)
    assert (found.settings_module, found.settings_why) == ("bakery.settings.production", why)


def test_a_dockerfile_for_local_development_does_not_choose_the_settings(tmp_path):
    files = {**BAKERY, "compose/local/Dockerfile": "ENV DJANGO_SETTINGS_MODULE=bakery.settings.dev\n",
             "bakery/settings/prod.py": "from .base import *\n"}
    root = tree(tmp_path / "p", files, drop=("Dockerfile", "bakery/settings/production.py"))
    found = projectinit.inspect(root)
    assert found.settings_module == "bakery.settings.prod" and "prod.py exists" in found.settings_why


def test_with_no_production_settings_init_keeps_manage_pys_and_blocks_on_its_debug(tmp_path):
    root = tree(tmp_path / "p", BAKERY, drop=("Dockerfile", "bakery/settings/production.py"))
    found = projectinit.inspect(root)
    assert found.settings_module == "bakery.settings.dev" and "no production settings were found" in found.settings_why
    assert found.debug_in == "bakery/settings/dev.py"
    gap = next(g for g in projectinit.deploy_gaps(found) if "DEBUG = True" in g.what)
    assert gap.blocking and "allow_debug = true" in gap.fix


def test_debug_set_false_after_a_star_import_is_not_debug(tmp_path):
    files = {**BAKERY, "bakery/settings/production.py": "from .dev import *\nDEBUG = False\n"}
    root = tree(tmp_path / "p", files, drop=("Dockerfile",))
    assert projectinit.inspect(root).debug_in is None
    files["bakery/settings/production.py"] = "DEBUG = False\nfrom .dev import *\n"
    assert projectinit.inspect(tree(tmp_path / "q", files, drop=("Dockerfile",))).debug_in == "bakery/settings/dev.py"


# --- 2. the environment the settings read ---------------------------------------------------------

def test_init_finds_every_variable_production_reads_through_base(bakery):
    found = projectinit.inspect(bakery)
    assert found.env_keys == ["DATABASE_URL", "ADMIN_PASSWORD", "CSP_DEFAULT_SRC", "DJANGO_SECRET_KEY",
                              "DJANGO_ALLOWED_HOSTS", "PRIMARY_HOST", "AWS_STORAGE_BUCKET_NAME", "REDIS_URL"]
    assert "DEV_ONLY" not in found.env_keys   # dev.py is not part of the production settings


def test_the_env_has_each_variable_with_where_it_is_read_and_working_values(bakery):
    lines = env_lines(projectinit.inspect(bakery), generate=True)
    assert "bakery/settings/production.py:4 (os.environ[...])" in comment(lines, "DJANGO_SECRET_KEY")
    assert len(value(lines, "DJANGO_SECRET_KEY")) >= 50 and len(value(lines, "ADMIN_PASSWORD")) >= 50
    assert value(lines, "DJANGO_SECRET_KEY") != value(lines, "SECRET_KEY")
    assert value(lines, "DJANGO_ALLOWED_HOSTS") == "127.0.0.1,localhost"
    # the code appends "/0": a database number of ours would make .../15/0
    assert value(lines, "REDIS_URL") == "redis://localhost:6379" and "appends" in comment(lines, "REDIS_URL")
    assert value(lines, "DATABASE_URL").startswith("postgresql://bakery_site:")   # psycopg2, through -r files
    assert value(lines, "PRIMARY_HOST") == "" and "fill it in" in comment(lines, "PRIMARY_HOST")
    assert "#CSP_DEFAULT_SRC=" in lines and "optional" in comment(lines, "CSP_DEFAULT_SRC")
    assert value(lines, "SITE_NAME") == "Bakery" and ".env.example" in comment(lines, "SITE_NAME")
    assert value(lines, "SITE_REGION") == "eu" and "Dockerfile" in comment(lines, "SITE_REGION")
    assert "#SENTRY_DSN=" in lines and "PYTHONUNBUFFERED" not in "\n".join(lines)


def test_a_redis_url_used_whole_keeps_the_projects_own_database(tmp_path):
    files = {**BAKERY, "bakery/settings/production.py": "import os\nfrom .base import *\n"
                                                        "CACHES = {'default': {'LOCATION': os.environ['REDIS_URL']}}\n"}
    lines = env_lines(projectinit.inspect(tree(tmp_path / "p", files)))
    assert value(lines, "REDIS_URL") == "redis://localhost:6379/15"


def test_init_only_requires_what_no_read_defaults(bakery):
    found = projectinit.inspect(bakery)
    assert projectinit.unfilled(found) == ["PRIMARY_HOST"]


SOURCE = '''
import os
import environ
import dj_database_url as dburl
from decouple import config, Csv
from os import getenv, environ as ENV
env = environ.Env(DEBUG=(bool, False))
if "DATABASE_URL" in os.environ:
    DATABASES = {"default": dburl.config(conn_max_age=600)}
A = os.environ["A_KEY"]
B = os.environ.get("B_KEY", "x")
C = getenv("C_KEY")
D = ENV["D_KEY"]
E = env.db()
F = env.bool("F_FLAG", default=False)
G = env("G_KEY")
H = config("H_LIST", cast=Csv())
I = config("I_KEY", default="i")
J = dburl.config(env="J_DB")
K = os.environ.setdefault("K_KEY", "k")
REDIS = os.getenv("REDIS_URL")
L = f"{REDIS}/1"
M = env.cache_url()
'''


def test_the_ast_scan_sees_every_form_real_settings_use():
    got = [(r.name, r.default, r.how, r.cast, r.appended) for r in envreads.reads(SOURCE, "s.py")]
    assert got == [
        ("DEBUG", True, "django-environ", "bool", False),
        ("DATABASE_URL", True, '"DATABASE_URL" in os.environ', "str", False),
        ("DATABASE_URL", False, "dj-database-url", "db", False),
        ("A_KEY", False, "os.environ[...]", "str", False),
        ("B_KEY", True, "os.environ.get", "str", False),
        ("C_KEY", True, "os.getenv", "str", False),
        ("D_KEY", False, "os.environ[...]", "str", False),
        ("DATABASE_URL", False, "django-environ", "db", False),
        ("F_FLAG", True, "django-environ", "bool", False),
        ("G_KEY", False, "django-environ", "str", False),
        ("H_LIST", False, "decouple", "list", False),
        ("I_KEY", True, "decouple", "str", False),
        ("J_DB", False, "dj-database-url", "db", False),
        ("K_KEY", True, "os.environ.setdefault", "str", False),
        ("REDIS_URL", True, "os.getenv", "str", True),
        ("CACHE_URL", False, "django-environ", "cache", False),
    ]
    assert envreads.reads("def broken(:\n", "x.py") == []


def test_reads_through_the_projects_own_helpers_count(tmp_path):
    """The demo's settings read everything through config/environment.py's env_str, env_int, ..."""
    found = projectinit.inspect(REPO / "examples" / "uavcrew")
    assert {"SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "MEDIA_ROOT"} <= set(found.env_keys)
    secret = found.env_reads["SECRET_KEY"][0]
    assert (secret.file, secret.how, secret.default) == ("src/web/config/settings/base.py", "env_str()", False)
    assert projectinit.unfilled(found) == [] and found.settings_module == "config.settings.production"
    assert envreads.helpers("import os\ndef flag(x):\n    return os.environ.get('DEBUG')\n") == {}


def test_a_variable_read_only_through_a_library_gets_that_librarys_url(tmp_path):
    files = {**BAKERY, "bakery/settings/production.py": "import environ\nfrom .base import *\nenv = environ.Env()\n"
                                                        "DATABASES = {'default': env.db('PRIMARY_DB')}\n"
                                                        "CACHES = {'default': env.cache('CACHE_LOCATION')}\n"}
    lines = env_lines(projectinit.inspect(tree(tmp_path / "p", files)))
    assert value(lines, "PRIMARY_DB") == value(lines, "DATABASE_URL")
    assert value(lines, "CACHE_LOCATION") == "redis://localhost:6379/15"


DECOUPLE_SITE = {
    "manage.py": 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")\n',
    "shop/__init__.py": "",
    "shop/wsgi.py": "",
    "shop/urls.py": 'urlpatterns = [path("health/", views.health)]\n',
    "shop/settings.py": textwrap.dedent('''
        from decouple import Csv, config
        import dj_database_url
        SECRET_KEY = config("SECRET_KEY")
        DEBUG = config("DEBUG", default=False, cast=bool)
        ALLOWED_HOSTS = config("ALLOWED_HOSTS", cast=Csv())
        DATABASES = {"default": dj_database_url.config()}
        CELERY_BROKER_URL = config("CELERY_BROKER_URL")
        STRIPE_API_KEY = config("STRIPE_API_KEY")
        ROOT_URLCONF = "shop.urls"
        '''),
    ".env.example": "STRIPE_API_KEY=sk_test_xxx\nGREETING='hello world'\nLOG_LEVEL=info\n",
}


def test_a_decouple_project_gets_a_value_for_everything_but_its_own_credentials(tmp_path):
    found = projectinit.inspect(tree(tmp_path / "shop", DECOUPLE_SITE))
    assert (found.settings_module, found.health_web) == ("shop.settings", "/health/")
    assert projectinit.unfilled(found) == ["STRIPE_API_KEY"]
    lines = env_lines(found)
    assert value(lines, "ALLOWED_HOSTS") == "127.0.0.1,localhost" and value(lines, "CELERY_BROKER_URL") == (
        "redis://localhost:6379/15")
    assert value(lines, "DEBUG") == "0" and "shop/settings.py:7 (dj-database-url)" in comment(lines, "DATABASE_URL")
    # .env.example's placeholder and a value systemd would read otherwise than a shell stay out
    assert value(lines, "STRIPE_API_KEY") == "" and "#GREETING=" in lines and value(lines, "LOG_LEVEL") == "info"


# --- 3. uploads inside the release ----------------------------------------------------------------

def test_init_blocks_on_a_media_root_inside_the_release_and_proposes_the_env(bakery):
    found = projectinit.inspect(bakery)
    assert (found.media_inside.where, found.media_inside.file) == ("bakery/media", "bakery/settings/base.py")
    gap = next(g for g in projectinit.deploy_gaps(found) if "MEDIA_ROOT" in g.what)
    assert gap.blocking and 'os.environ.get("MEDIA_ROOT", os.path.join(PROJECT_DIR, "media"))' in gap.fix
    assert value(env_lines(found), "MEDIA_ROOT") == "/opt/ayna/bakery-site/shared/media"


@pytest.mark.parametrize("base_dir,media,inside", [
    ("Path(__file__).resolve().parent.parent.parent", 'BASE_DIR / "media"', None),       # the release's link
    ("Path(__file__).resolve().parent.parent.parent", 'BASE_DIR / "uploads"', "uploads"),
    ("Path(__file__).resolve().parents[1]", 'BASE_DIR.joinpath("media")', "bakery/media"),
    ("Path(__file__).resolve().parents[1]", 'os.environ.get("MEDIA_ROOT", BASE_DIR / "m")', None),
    ("Path(__file__).resolve().parents[1]", 'env("MEDIA_ROOT")', None),
    ("Path(__file__).resolve().parents[1]", '"/srv/media"', None),
    ("Path(__file__).resolve().parents[1]", '"public/media"', "public/media"),   # relative to manage.py's folder
    ("Path(__file__).resolve().parents[1]", 'str(BASE_DIR / "media")', "bakery/media"),
])
def test_where_media_root_resolves(tmp_path, base_dir, media, inside):
    files = {**BAKERY, "bakery/settings/production.py": f"import os\nfrom pathlib import Path\nfrom .base import *\n"
                                                        f"BASE_DIR = {base_dir}\nMEDIA_ROOT = {media}\n"}
    found = projectinit.inspect(tree(tmp_path / "p", files))
    assert (found.media_inside.where if found.media_inside else None) == inside


# --- 5. locked packages with no wheel -------------------------------------------------------------

LOCK = '''version = 1
requires-python = ">=3.11"

[[package]]
name = "bakery-site"
version = "0.1.0"
source = { virtual = "." }
dependencies = [{ name = "django" }, { name = "uwsgi" }, { name = "oldthing" }, { name = "pywin", marker = "sys_platform == 'win32'" }]

[package.dev-dependencies]
dev = [{ name = "devtool" }]

[[package]]
name = "django"
version = "5.1"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://files.example/django-5.1-py3-none-any.whl" }]

[[package]]
name = "uwsgi"
version = "2.0.28"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.example/uwsgi-2.0.28.tar.gz" }

[[package]]
name = "oldthing"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "macwheel" }]
wheels = [{ url = "https://files.example/oldthing-1.0-cp311-cp311-win_amd64.whl" }]

[[package]]
name = "macwheel"
version = "2.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://files.example/macwheel-2.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl" }]

[[package]]
name = "pywin"
version = "1"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.example/pywin-1.tar.gz" }

[[package]]
name = "devtool"
version = "1"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.example/devtool-1.tar.gz" }
'''


def test_init_names_locked_packages_the_host_would_have_to_build(tmp_path):
    root = tree(tmp_path / "bakery-site", {**BAKERY, "uv.lock": LOCK,
                                           "pyproject.toml": '[project]\nname = "bakery-site"\n'
                                                             'dependencies = ["django", "uwsgi", "oldthing"]\n'})
    found = projectinit.inspect(root)
    assert [(u.name, u.unused) for u in found.unbuilt] == [("oldthing", None),
                                                           ("uwsgi", "gunicorn serves the web unit")]
    gaps = projectinit.deploy_gaps(found)
    uwsgi = next(g for g in gaps if g.what.startswith("uwsgi"))
    assert uwsgi.blocking and "needs a C compiler" in uwsgi.what and f"cd {root} && uv remove uwsgi" in uwsgi.fix
    other = next(g for g in gaps if "oldthing 1.0" in g.what)
    assert not other.blocking and "build-essential" in other.fix


def test_a_package_only_in_requirements_is_removed_there(tmp_path):
    root = tree(tmp_path / "bakery-site", {**BAKERY, "uv.lock": LOCK})
    fix = next(g for g in projectinit.deploy_gaps(projectinit.inspect(root)) if g.what.startswith("uwsgi")).fix
    assert fix.startswith("remove uwsgi from the requirements requirements.txt includes")


@pytest.mark.parametrize("name,python,ok", [
    ("a-1-py3-none-any.whl", (3, 11), True),
    ("a-1-cp312-cp312-manylinux_2_17_x86_64.whl", (3, 11), False),
    ("a-1-cp312-cp312-manylinux_2_17_x86_64.whl", (3, 12), True),
    ("a-1-cp312-cp312-manylinux_2_17_x86_64.whl", None, True),
    ("a-1-cp39-abi3-manylinux2014_x86_64.whl", (3, 13), True),
    ("a-1-cp312-cp312-manylinux_2_17_aarch64.whl", (3, 12), False),
    ("a-1-cp312-cp312-macosx_11_0_x86_64.whl", (3, 12), False),
    ("a-1-cp312-cp312-musllinux_1_1_x86_64.whl", (3, 12), False),
    ("a-1-py2-none-any.whl", (3, 12), False),
])
def test_which_wheels_install_on_the_host(name, python, ok):
    assert wheels.fits(name, python) is ok


CP311_LOCK = '''version = 1
requires-python = ">=3.11"

[[package]]
name = "shop"
version = "0.1.0"
source = { editable = "." }
dependencies = [{ name = "fastjson" }, { name = "django" }]

[[package]]
name = "django"
version = "5.1"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.example/django-5.1.tar.gz" }
wheels = [{ url = "https://files.example/django-5.1-py3-none-any.whl" }]

[[package]]
name = "fastjson"
version = "3.9"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.example/fastjson-3.9.tar.gz" }
wheels = [
    { url = "https://files.example/fastjson-3.9-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl" },
    { url = "https://files.example/fastjson-3.9-cp312-cp312-macosx_11_0_arm64.whl" },
]
'''


@pytest.mark.parametrize("declares, unbuilt, says", [
    ({".python-version": "3.12\n"}, ["fastjson"], "Linux x86_64 and Python 3.12"),
    ({"pyproject.toml": '[project]\nname = "shop"\nrequires-python = ">=3.11"\n'}, [], None),
    ({}, [], None),   # nothing declared: a wheel for any CPython 3 will do
])
def test_init_judges_the_wheels_for_the_python_the_project_declares(tmp_path, declares, unbuilt, says):
    root = tree(tmp_path / "shop", {"uv.lock": CP311_LOCK, **declares})
    found = projectinit.inspect(root)
    assert [u.name for u in found.unbuilt] == unbuilt
    gaps = [g for g in projectinit.deploy_gaps(found) if "fastjson 3.9" in g.what]
    assert [says in g.what for g in gaps] == ([True] if says else [])


@pytest.mark.parametrize("specs, oldest", [
    ([">=3.12"], (3, 12)), ([">=3.10,<3.13", ">=3.11"], (3, 11)), (["==3.12.*"], (3, 12)),
    ([">3.11"], (3, 12)), (["<3"], None), ([], None),
])
def test_the_python_whose_wheels_init_wants_is_the_oldest_the_project_allows(specs, oldest):
    declared = [pyversion.Declaration("x", s, s) for s in specs]
    assert pyversion.oldest(declared) == oldest


def test_init_reads_broken_files_without_failing(tmp_path):
    files = {**BAKERY, "bakery/settings/production.py": "from .base import *\nDEBUG = (\n",
             "bakery/urls.py": "urlpatterns = [path(\n", "Dockerfile": "ENV DJANGO_SETTINGS_MODULE=\"unclosed\n",
             "uv.lock": 'version = 1\n[[package]]\nname = "x"\ndependencies = [{ marker = "a" }, "b"]\n'
                        'source = { virtual = "." }\n[[package]]\nsource = "odd"\n'}
    found = projectinit.inspect(tree(tmp_path / "p", files))
    assert found.settings_module == "bakery.settings.production" and found.unbuilt == []
    assert projectinit.env_text(projectinit.plan(found, hosts_dir=tmp_path), generate=False)


# --- 7. a health URL that answers -----------------------------------------------------------------

@pytest.mark.parametrize("urls,url,fallback", [
    ('urlpatterns = [path("", include(wagtail_urls)), path("django-admin/", admin.site.urls)]',
     "/django-admin/login/", True),
    ('urlpatterns = [path("", include(wagtail_urls)), path("healthz", views.ok)]', "/healthz", False),
    ('urlpatterns = [re_path(r"^ht/", include("health_check.urls"))]', "/ht/", False),
    ('urlpatterns = [path("", views.home), path("admin/", admin.site.urls)]', "/", False),
    ('urlpatterns = [path("api/", include("bakery.api_urls"))]', "/api/status/ping/", False),
    ('urlpatterns = [path("", include(cms_urls))]', "/", True),
])
def test_init_proposes_a_health_url_that_answers(tmp_path, urls, url, fallback):
    files = {**BAKERY, "bakery/urls.py": urls + "\n",
             "bakery/api_urls.py": 'urlpatterns = [path("status/ping/", views.ping)]\n'}
    found = projectinit.inspect(tree(tmp_path / "p", files))
    plan = projectinit.plan(found, hosts_dir=tmp_path)
    assert plan.health["web"] == url
    notes = [g for g in projectinit.deploy_gaps(found) if g.what.startswith("health.web")]
    assert bool(notes) is fallback and all(not g.blocking and "fallback" in g.what for g in notes)


def test_healthurl_reads_a_missing_urlconf_as_a_fallback(tmp_path):
    assert healthurl.django(tmp_path, "nowhere.urls", module_path).fallback


# --- 8. blockers apart from advice ------------------------------------------------------------------

def test_init_lists_the_standard_as_advice_and_exits_0(bakery, tmp_path):
    env = {"AYNA_FAB_HOSTS": str(tmp_path / "hosts.toml"), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([str(Path(sys.executable).with_name("fab")), "init", str(bakery)],
                       capture_output=True, text=True, env=env, cwd=REPO)
    assert p.returncode == 0, p.stderr
    before, advice = p.stdout.split("Against the standard, advice only")
    assert "✗ MEDIA_ROOT" in before and "Makefile" not in before
    assert "Makefile is missing" in advice and "✗" not in advice
    assert "settings     bakery.settings.production (Dockerfile sets it)" in before
    assert "\n  Python       >=3.12 (runtime.txt: python-3.12.4; Dockerfile (FROM): FROM python:3.12)\n" in before


# --- how the code uses a value decides the value init writes ----------------------------------------

ON_DOCKER = {
    "app/manage.py": "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'hello.settings')\n",
    "app/requirements.txt": "Django==4.2.3\ngunicorn==21.2.0\n",
    "app/hello/__init__.py": "",
    "app/hello/settings.py": (
        "import os\n"
        "SECRET_KEY = os.environ.get('SECRET_KEY')\n"
        "DEBUG = bool(os.environ.get('DEBUG', default=0))\n"
        "ALLOWED_HOSTS = os.environ.get('DJANGO_ALLOWED_HOSTS').split(' ')\n"
        "REDIS_URL = os.environ.get('REDIS_TLS_URL', os.environ.get('REDIS_URL'))\n"
        "if REDIS_URL:\n"
        "    CACHES = {'default': {'LOCATION': REDIS_URL + '/0'}, 'renditions': {'LOCATION': REDIS_URL + '/1'}}\n"),
    "app/hello/wsgi.py": "application = None\n",
}


def test_a_url_the_code_appends_to_through_another_variables_default_has_no_database_number(tmp_path):
    lines = env_lines(projectinit.inspect(tree(tmp_path / "ondocker", ON_DOCKER)))
    assert value(lines, "REDIS_URL") == "redis://localhost:6379"


def test_a_list_the_code_splits_on_spaces_is_written_with_spaces(tmp_path):
    lines = env_lines(projectinit.inspect(tree(tmp_path / "ondocker", ON_DOCKER)))
    assert value(lines, "DJANGO_ALLOWED_HOSTS") == "127.0.0.1 localhost"
    files = {**ON_DOCKER, "app/hello/settings.py": "import os\nALLOWED_HOSTS = os.environ['DJANGO_ALLOWED_HOSTS'].split(',')\n"}
    assert value(env_lines(projectinit.inspect(tree(tmp_path / "comma", files))), "DJANGO_ALLOWED_HOSTS") == \
        "127.0.0.1,localhost"


def test_a_flag_the_code_reads_as_bool_of_a_string_is_left_empty(tmp_path):
    """bool("0") is True: the only value that turns such a DEBUG off is the empty one."""
    lines = env_lines(projectinit.inspect(tree(tmp_path / "ondocker", ON_DOCKER)))
    assert value(lines, "DEBUG") == "" and "bool()" in comment(lines, "DEBUG")
    files = {**ON_DOCKER, "app/hello/settings.py": "import os\nDEBUG = os.environ.get('DEBUG') == '1'\n"}
    assert value(env_lines(projectinit.inspect(tree(tmp_path / "eq", files))), "DEBUG") == "0"


def test_a_requirements_file_beside_manage_py_one_folder_down_is_the_projects(tmp_path):
    found = projectinit.inspect(tree(tmp_path / "ondocker", ON_DOCKER))
    assert found.requirements == "app/requirements.txt" and "gunicorn" in found.dependencies


def test_a_read_under_an_if_on_another_variable_is_not_required(tmp_path):
    files = {**ON_DOCKER, "app/hello/settings.py": (
        "import os\n"
        "if 'CF_TOKEN' in os.environ or 'CF_BEARER' in os.environ:\n"
        "    ZONE = os.environ['CF_ZONEID']\n"
        "KEY = os.environ['SIGNING_THING']\n")}
    found = projectinit.inspect(tree(tmp_path / "p", files))
    by = {r.name: r for rs in found.env_reads.values() for r in rs}
    assert by["CF_ZONEID"].default is True and by["SIGNING_THING"].default is False




def test_a_read_only_a_branch_makes_is_left_commented_with_its_condition_and_does_not_block(tmp_path):
    files = {**ON_DOCKER, "app/hello/settings.py": (
        "import os\n"
        "STRATEGY = os.environ.get('MAIL_STRATEGY', 'local')\n"
        "if STRATEGY == 'smtp':\n"
        "    EMAIL_HOST = os.environ['SMTP_HOST']\n"
        "    if os.environ.get('SMTP_AUTH'):\n"
        "        EMAIL_HOST_USER = os.environ['SMTP_USER']\n"
        "else:\n"
        "    OUTBOX = os.environ['OUTBOX_DIR']\n"
        "KEY = os.environ['SIGNING_THING']\n")}
    found = projectinit.inspect(tree(tmp_path / "p", files))
    # SMTP_USER: under an if on the environment itself, so optional (as before)
    assert found.env_when == {"SMTP_HOST": "STRATEGY == 'smtp'", "OUTBOX_DIR": "not (STRATEGY == 'smtp')"}
    assert "SMTP_USER" in found.env_optional
    assert projectinit.unfilled(found) == ["SIGNING_THING"]   # the one read on every path still blocks
    lines = env_lines(found)
    assert "#SMTP_HOST=" in lines and "needed only when STRATEGY == 'smtp'" in comment(lines, "SMTP_HOST")
    advice = [g for g in projectinit.deploy_gaps(found) if "only when" in g.what]
    assert [(g.what, g.blocking) for g in advice] == [
        ("the code reads SMTP_HOST without a default, only when STRATEGY == 'smtp'", False),
        ("the code reads OUTBOX_DIR without a default, only when not (STRATEGY == 'smtp')", False)]


def test_a_secret_another_party_issues_is_never_made_up(tmp_path):
    files = {**ON_DOCKER, "app/hello/settings.py": (
        "import os\n"
        "SECRET_KEY = os.environ['DJANGO_SECRET_KEY']\n"
        "GOOGLE = os.environ.get('GOOGLE_OAUTH2_CLIENT_SECRET', '')\n"
        "STRIPE = os.environ['STRIPE_WEBHOOK_SECRET']\n")}
    found = projectinit.inspect(tree(tmp_path / "p", files))
    lines = env_lines(found)
    assert len(value(lines, "DJANGO_SECRET_KEY")) > 20           # the project's own: random
    assert "#GOOGLE_OAUTH2_CLIENT_SECRET=" in lines              # optional, and not ours to invent
    assert value(lines, "STRIPE_WEBHOOK_SECRET") == "" and "STRIPE_WEBHOOK_SECRET" in projectinit.unfilled(found)


def test_a_pyproject_of_tools_settings_alone_gets_a_project_table_before_uv_add(tmp_path):
    files = {**ON_DOCKER, "pyproject.toml": "[tool.ruff]\nline-length = 100\n", "runtime.txt": "python-3.12.4\n",
             "requirements.txt": "Django==5.2\ngunicorn\n"}
    root = tree(tmp_path / "shop", files)
    found = projectinit.inspect(root)
    assert not found.pyproject   # no [project]: `uv lock` would lock nothing, and `uv init` refuses the file
    fix = next(g.fix for g in projectinit.deploy_gaps(found) if g.what.startswith("uv.lock is missing"))
    assert "uv lock &&" not in fix and "uv init" not in fix and " && uv add -r requirements.txt && " in fix
    subprocess.run(["sh", "-c", fix.split(" && uv add")[0]], check=True)
    data = tomllib.loads((root / "pyproject.toml").read_text())
    assert data["tool"]["ruff"] == {"line-length": 100}
    assert data["project"] == {"name": "shop", "version": "0", "requires-python": ">=3.12", "dependencies": []}


HEALTHCHECKS_LIKE = (
    "import os\n"
    "from pathlib import Path\n"
    "from typing import Any, Mapping\n"
    "BASE_DIR = Path(__file__).resolve().parent.parent\n"
    "def envsecret(s: str, default: str | None = None) -> str | None:\n"
    "    if path := os.getenv(s + '_FILE'):\n"
    "        raise ValueError(path)\n"
    "    return os.getenv(s, default)\n"
    "def envstrict(name, default=None):\n"
    "    value = os.environ.get(name, '')\n"
    "    if not value and default is None:\n"
    "        raise ValueError(name)\n"
    "    return value or default\n"
    "SECRET_KEY = envsecret('HC_KEY', '---')\n"
    "S3_SECRET_KEY = envsecret('S3_SECRET_KEY')\n"
    "SLACK_CLIENT_SECRET = envsecret('SLACK_CLIENT_SECRET')\n"
    "SITE = envstrict('SITE_ROOT')\n"
    "DATABASES: Mapping[str, Any] = {'default': {'ENGINE': 'django.db.backends.sqlite3',\n"
    "    'NAME': os.getenv('DB_NAME', BASE_DIR / 'hc.sqlite')}}\n"
    "if os.getenv('DB') == 'postgres':\n"
    "    DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql', 'HOST': os.getenv('DB_HOST', '')}}\n")


def test_a_helper_that_passes_its_default_through_requires_nothing_of_a_call_without_one(tmp_path):
    assert envreads.helpers(HEALTHCHECKS_LIKE) == {"envsecret": True, "envstrict": False}
    found = projectinit.inspect(tree(tmp_path / "p", {**ON_DOCKER, "app/hello/settings.py": HEALTHCHECKS_LIKE}))
    assert projectinit.unfilled(found) == ["SITE_ROOT"]   # envstrict raises without one
    assert {"S3_SECRET_KEY", "SLACK_CLIENT_SECRET"} <= found.env_optional


def test_only_the_projects_own_secrets_are_made_up(tmp_path):
    found = projectinit.inspect(tree(tmp_path / "p", {**ON_DOCKER, "app/hello/settings.py": HEALTHCHECKS_LIKE}))
    lines = env_lines(found, generate=True)
    assert len(value(lines, "HC_KEY")) > 20          # assigned to Django's SECRET_KEY, whatever its name
    assert "#S3_SECRET_KEY=" in lines and "#SLACK_CLIENT_SECRET=" in lines   # issued by others: never invented



@pytest.mark.parametrize("read, written", [
    ("def envbool(s, default):\n    v = os.getenv(s, default=default)\n    if v not in ('', 'True', 'False'):\n"
     "        raise ValueError(v)\n    return v == 'True'\nDEBUG = envbool('DEBUG', 'True')\n", "False"),
    ("DEBUG = os.environ.get('DEBUG', 'false') == 'true'\n", "false"),
    ("DEBUG = os.environ.get('DEBUG', 'off') == 'on'\n", "off"),
    ("DEBUG = int(os.environ.get('DEBUG', 0)) == 1\n", "0"),
    ("DEBUG = os.environ['DEBUG'] == '1'\n", "0"),
])
def test_debug_is_written_false_in_the_words_of_the_codes_own_default(tmp_path, read, written):
    found = projectinit.inspect(tree(tmp_path / "p", {**ON_DOCKER, "app/hello/settings.py": "import os\n" + read}))
    assert value(env_lines(found), "DEBUG") == written

def test_databases_assigned_with_an_annotation_is_still_the_settings_own(tmp_path):
    found = projectinit.inspect(tree(tmp_path / "p", {**ON_DOCKER, "app/hello/settings.py": HEALTHCHECKS_LIKE}))
    assert found.databases_literal
    gap = next(g for g in projectinit.deploy_gaps(found) if "never read DATABASE_URL" in g.what)
    assert gap.blocking and "(DB_NAME, DB, DB_HOST)" in gap.fix
    # DATABASES filled from dj_database_url.config(), which reads DATABASE_URL without naming it
    found = projectinit.inspect(tree(tmp_path / "q", {**ON_DOCKER, "app/hello/settings.py": (
        "import dj_database_url\nDATABASES = {}\n"
        "DATABASES['default'] = dj_database_url.config(default='postgres://u@localhost/db')\n")}))
    assert not found.databases_literal


@pytest.mark.parametrize("files, starts", [
    ({"pyproject.toml": '[project]\nname = "x"\ndependencies = ["django"]\n'}, "uv lock &&"),
    ({"pyproject.toml": '[tool.poetry]\nname = "x"\n[tool.poetry.dependencies]\ndjango = "^5"\n'},
     "uvx migrate-to-uv && uv lock &&"),
    ({"Pipfile": "[packages]\ndjango = '*'\n"}, "uvx migrate-to-uv && uv lock &&"),
    ({"pyproject.toml": "[tool.black]\n", "requirements.txt": "django\n"}, "printf "),
    ({"pyproject.toml": "[tool.black]\n"}, "printf "),
    ({"requirements.txt": "django\n"}, "uv init --bare --no-workspace && uv add -r requirements.txt &&"),
    ({}, "uv init --bare --no-workspace && uv add DEPENDENCIES... &&"),
])
def test_the_way_to_a_uv_lock_follows_what_the_project_declares_its_packages_in(tmp_path, files, starts):
    root = tree(tmp_path / "p", {"manage.py": BAKERY["manage.py"], **files})
    fix = next(g.fix for g in projectinit.deploy_gaps(projectinit.inspect(root))
               if g.what.startswith("uv.lock is missing"))
    assert fix.startswith(f"cd {root.resolve()} && {starts}"), fix


def test_the_requirements_of_an_app_kept_one_folder_down_are_the_projects_but_not_the_docs(tmp_path):
    app = {"project/main.py": "from fastapi import FastAPI\napp = FastAPI()\n",
           "project/requirements.txt": "fastapi\nuvicorn\n", "docs/requirements.txt": "sphinx\n"}
    assert projectinit.requirements_file(tree(tmp_path / "a", app)) == "project/requirements.txt"
    assert projectinit.requirements_file(tree(tmp_path / "b", {**app, "other/requirements.txt": "x\n"})) is None
    assert projectinit.requirements_file(tree(tmp_path / "c", {"docs/requirements.txt": "sphinx\n"})) is None


def test_poetrys_dependencies_are_the_projects(tmp_path):
    root = tree(tmp_path / "p", {"manage.py": BAKERY["manage.py"], "pyproject.toml":
                                 '[tool.poetry.dependencies]\npython = "^3.11"\nDjango = "^5"\npsycopg = "*"\n'})
    found = projectinit.inspect(root)
    assert found.dependencies == {"django", "psycopg"} and not found.pyproject
    assert "gunicorn is not a dependency, but the web unit runs gunicorn" in [
        g.what for g in projectinit.deploy_gaps(found)]

@pytest.mark.parametrize("json", [False, True])
def test_init_exits_0_with_advice_or_without(bakery, tmp_path, monkeypatch, capsys, json):
    """Only the standard's advice differs between the two runs: the exit code must not."""
    from ayna_fab.cli.tasks import init
    monkeypatch.setenv("AYNA_FAB_HOSTS", str(tmp_path / "hosts.toml"))
    advice = projectinit.Gap("1. the Makefile is missing", "add one", blocking=False)
    for standard in ([], [advice]):
        monkeypatch.setattr(projectinit, "standard_gaps", lambda *a, standard=standard: list(standard))
        assert init.init.body(None, str(bakery), json=json) is None   # no Exit: exit code 0
        out = capsys.readouterr().out
        assert ("Makefile is missing" in out) is bool(standard)
        assert '"exit_code": 0' in out if json else "Before the first deploy" in out


def test_a_pyproject_whose_tables_are_not_tables_is_read_as_declaring_nothing(tmp_path):
    root = tree(tmp_path / "odd", {"manage.py": BAKERY["manage.py"],
                                   "pyproject.toml": 'project = "x"\ntool = 1\n'})
    found = projectinit.inspect(root)
    assert found.name == "odd" and not found.pyproject and found.dependencies == set()
    assert projectinit.uv_workspace(root) is None
