"""A wheel built from the project works on its own: installed in a fresh virtual environment,
away from the checkout, it has the bundled process templates, the migrations, the pages and the
report's templates."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import EXAMPLE_CSV, PG_URL
from tests.e2e.test_cli import LAUNCH

ROOT = Path(__file__).resolve().parents[2]
# What a build must not pick up from a working copy (caches, earlier builds, local state).
JUNK = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "samverkan-demo*",
    "mail",
    "*.db",
    "*.key",
)


def files_under(folder: Path) -> set[str]:
    assert folder.is_dir(), folder
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a clean copy of the sources, with the backend already installed."""
    where = tmp_path_factory.mktemp("build")
    source = where / "src"
    shutil.copytree(ROOT, source, ignore=JUNK)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "-w",
            str(where / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = (where / "dist").glob("samverkan-*.whl")
    return found


@pytest.mark.subprocess
def test_the_wheel_holds_every_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    folders = [
        ("process_templates", "flows/process_templates"),
        ("store/migrations", "store/migrations"),
        ("flows/web/templates", "flows/web/templates"),
        ("flows/web/workspace/templates", "flows/web/workspace/templates"),
        ("flows/web/workspace/static", "flows/web/workspace/static"),
        ("flows/reporting/templates", "flows/reporting/templates"),
        ("messaging/locale", "messaging/locale"),
    ]
    # A folder that moved would otherwise expect nothing, and pass.
    assert [folder for folder, _ in folders if not files_under(ROOT / folder)] == []
    expected = {f"{inside}/{f}" for folder, inside in folders for f in files_under(ROOT / folder)}
    assert "flows/process_templates/learning-cycle/process.yaml" in expected
    assert "flows/reporting/templates/report.html" in expected
    assert "flows/web/templates/base.html" in expected
    assert "flows/web/workspace/templates/login.html" in expected
    assert "flows/web/workspace/static/workspace.css" in expected
    assert "messaging/locale/ar/LC_MESSAGES/samverkan.po" in expected
    assert expected - names == set()


@pytest.mark.subprocess
def test_the_wheel_offers_the_postgresql_driver_as_an_extra(wheel: Path) -> None:
    """``pip install 'samverkan[postgresql]'`` brings the driver the README's production setup
    names (postgresql+psycopg://…); without it a PostgreSQL store cannot be opened."""
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        lines = z.read(meta).decode().splitlines()
    assert "Provides-Extra: postgresql" in lines
    assert any(
        line.startswith("Requires-Dist: psycopg[binary]") and 'extra == "postgresql"' in line
        for line in lines
    ), [line for line in lines if line.startswith("Requires-Dist: psycopg")]


# Run by the installed wheel's interpreter: the login page, the stylesheet, and a signed-in
# request sent to the login page when it has no session.
WORKSPACE_PAGES = """
import asyncio, httpx
from flows.settings import load_settings
from flows.web.app import create_app
app = create_app(load_settings())
async def go():
    t = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=t, base_url="http://x") as c:
        login = await c.get("/workspace/login")
        assert "Sign in to the workspace" in login.text, login.text
        css = await c.get("/workspace/static/workspace.css")
        home = await c.get("/workspace/")
        # The catalogues came along: the unknown link's page speaks each language.
        gone = await c.get("/a/unknown")
        assert 'lang="ar" dir="rtl"' in gone.text and "Sidan finns inte" in gone.text, gone.text
        print(login.status_code, css.headers["content-type"].split(";")[0], home.status_code)
asyncio.run(go())
"""


@pytest.mark.subprocess
def test_every_module_of_the_packages_is_in_the_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {
        str(f.relative_to(ROOT))
        for top in ("flows", "messaging", "store")
        for f in (ROOT / top).rglob("*.py")
        if "__pycache__" not in f.parts
    }
    assert "flows/web/workspace/core.py" in modules
    assert modules - names == set()


@pytest.mark.subprocess
def test_an_installed_wheel_launches_the_bundled_learning_cycle(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The dependencies come from the project's environment, after the venv's own packages, so
    # samverkan itself can only be the installed wheel.
    (site,) = (venv / "lib").glob("python*/site-packages")
    deps = sysconfig.get_paths()["purelib"]
    (site / "dependencies.pth").write_text(f"{deps}\n")
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    elsewhere = tmp_path / "office"
    elsewhere.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SAMVERKAN_", "PREFECT_", "PYTHON"))
    }
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["SAMVERKAN_DATABASE_URL"] = f"sqlite:///{elsewhere / 'samverkan.db'}"

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    where = run(python, "-c", "import flows; print(flows.__file__)")
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    samverkan = venv / "bin" / "samverkan"
    listed = run(samverkan, "templates", "list")
    assert listed.returncode == 0, listed.stderr
    names = [line.split("  ")[0] for line in listed.stdout.splitlines()]
    assert names == ["annual-survey", "learning-cycle"], listed.stdout
    assert "(broken" not in listed.stdout
    # The instruments come inside the package too, locked and whole.
    instruments = run(samverkan, "templates", "instruments")
    assert instruments.stdout.startswith("samverkan-sf version 1 (locked)"), instruments.stderr
    assert run(samverkan, "participants", "import", EXAMPLE_CSV).returncode == 0
    launched = run(samverkan, *LAUNCH)
    assert (launched.returncode, launched.stdout.strip(), launched.stderr) == (0, "1", "")
    shown = run(samverkan, "cycle", "show", "1")
    assert shown.returncode == 0, shown.stderr
    assert "cycle 1: Vår 2027 (learning-cycle), running, 13 participants" in shown.stdout
    reported = run(samverkan, "report", "1", "--format", "md")  # from the bundled template
    assert reported.returncode == 0, reported.stderr
    assert reported.stdout.startswith("# Reflektion: Vår 2027\n"), reported.stdout
    # The workspace, from the installed package: its modules, templates and stylesheet.
    pw = elsewhere / "pw.txt"
    pw.write_text("correct horse battery staple\n")
    added = run(
        samverkan,
        "users",
        "add",
        "anna@kommun.example.org",
        "--role",
        "coordinator",
        "--password-file",
        pw,
    )
    assert added.returncode == 0, added.stderr
    served = run(python, "-c", WORKSPACE_PAGES)
    assert served.returncode == 0, served.stderr
    assert served.stdout.split() == ["200", "text/css", "303"], served.stdout
    if PG_URL:
        # The production store: the installed command opens (and migrates) PostgreSQL.
        schema = f"wheel_{uuid.uuid4().hex[:12]}"
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            sep = "&" if "?" in PG_URL else "?"
            env["SAMVERKAN_DATABASE_URL"] = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
            env["SAMVERKAN_SECRET_KEY"] = "wheel-test-key-" + "x" * 32
            on_pg = run(samverkan, "participants", "import", EXAMPLE_CSV)
            assert on_pg.returncode == 0, on_pg.stderr
            assert run(samverkan, "participants", "list").stdout.count("@") == 13
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
