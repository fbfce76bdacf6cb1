"""The layout's rules (README, Architecture): arrows run one way, and only a provider's own folder names it."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What issue 15 greps for: a provider's codes, name and reply format.
PROVIDER_WORDS = re.compile(r"21610|20404|twilio|twiml", re.IGNORECASE)


def _python(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _code_words(path: Path) -> list[str]:
    """Every token of the file but its comments: names, strings and docstrings."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [t.string for t in tokens if t.type != tokenize.COMMENT]


def _imports(path: Path) -> set[str]:
    """The absolute modules ``path`` imports (relative imports resolved against its package)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("path", _python("texts", "contacts", "campaigns"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_apps_above_the_providers_name_none_of_them(path: Path) -> None:
    named = [word for word in _code_words(path) if PROVIDER_WORDS.search(word)]
    assert not named, f"{path.relative_to(ROOT)} names a provider outside a comment: {named}"


def test_their_templates_name_none_either() -> None:
    templates = sorted(p for folder in ("texts", "contacts", "campaigns") for p in (ROOT / folder).rglob("*.html"))
    assert templates
    for path in templates:
        assert not PROVIDER_WORDS.search(path.read_text()), path.relative_to(ROOT)


def test_only_a_providers_own_folder_names_it() -> None:
    # providers/migrations/ is history: the plugin's models were created there before they moved to their folder.
    for path in sorted((ROOT / "providers").glob("*.py")):
        named = [word for word in _code_words(path) if PROVIDER_WORDS.search(word)]
        assert not named, f"{path.relative_to(ROOT)} names a provider: {named}"


def test_the_providers_import_nothing_above_them() -> None:
    for path in _python("providers"):
        above = {m for m in _imports(path) if m.split(".")[0] in {"texts", "contacts", "campaigns"}}
        assert not above, f"{path.relative_to(ROOT)} imports {sorted(above)}"


def test_the_kernel_imports_django_only() -> None:
    for path in _python("smsapp/core"):
        apps = {
            m
            for m in _imports(path)
            if m.split(".")[0] in {"texts", "contacts", "campaigns", "providers"}
            or (m.startswith("smsapp.") and not m.startswith("smsapp.core"))
        }
        assert not apps, f"{path.relative_to(ROOT)} imports {sorted(apps)}"


def test_the_apps_use_the_kernel_not_the_shell() -> None:
    for path in _python("texts", "contacts", "campaigns", "providers"):
        shell = {m for m in _imports(path) if m.startswith("smsapp") and not m.startswith("smsapp.core")}
        assert not shell, f"{path.relative_to(ROOT)} imports the shell: {sorted(shell)}"


def test_texts_services_never_import_the_tasks_that_import_them() -> None:
    """The circle texts.{broadcasts,broadcast_tasks,tasks,services}: tasks import services; services name tasks
    (``smsapp.core.celery.task``)."""
    for path in _python("texts"):
        if path.name in {"tasks.py", "apps.py"}:
            continue
        assert "texts.tasks" not in _imports(path), path.relative_to(ROOT)
