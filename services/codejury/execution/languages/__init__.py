"""The languages registry: one small module per language, looked up by name or alias."""

from __future__ import annotations

from codejury.core.settings import TypeScriptCheck
from codejury.execution.errors import LanguageUnavailableError, UnknownLanguageError
from codejury.execution.languages import (
    bash,
    cpp,
    csharp,
    go,
    java,
    javascript,
    lua,
    perl,
    php,
    python,
    ruby,
    rust,
    typescript,
)
from codejury.execution.languages.base import Language

LANGUAGES: dict[str, Language] = {
    m.LANGUAGE.name: m.LANGUAGE
    for m in (
        python,
        cpp,
        java,
        php,
        typescript,
        csharp,
        bash,
        javascript,
        go,
        rust,
        ruby,
        lua,
        perl,
    )
}
_BY_ALIAS = {alias: lang for lang in LANGUAGES.values() for alias in (lang.name, *lang.aliases)}


def get_language(name: str) -> Language:
    """The language called ``name`` (any alias, case-insensitive)."""
    language = _BY_ALIAS.get(name.strip().lower())
    if language is None:
        raise UnknownLanguageError(
            f"unknown language {name!r}: use one of {', '.join(sorted(LANGUAGES))}"
        )
    return language


def with_settings(language: Language, *, typescript_check: TypeScriptCheck = "tsc") -> Language:
    """``language`` as the execution settings judge it (TypeScript: type-checked or not)."""
    if language.name == typescript.LANGUAGE.name and typescript_check == "none":
        return typescript.TRANSPILE_ONLY
    return language


def require_available(name: str, *, typescript_check: TypeScriptCheck = "tsc") -> Language:
    language = with_settings(get_language(name), typescript_check=typescript_check)
    ok, why = language.available()
    if not ok:
        raise LanguageUnavailableError(f"{language.name} is not available here: {why}")
    return language


__all__ = ["LANGUAGES", "Language", "get_language", "require_available", "with_settings"]
