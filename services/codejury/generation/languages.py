"""What the generator needs to know about a language: its names, code-fence tag and stops.

The execution package owns the full languages registry (toolchains, sandbox commands);
services do not import each other, so this is the small, pure slice the generator uses.
The stop sequences are the registry's (a test keeps the two equal). Callers normally
fill ``Problem.stop_sequences`` themselves (the dataset loaders do); these are the
defaults for problems that arrive without them.
"""

from __future__ import annotations

from dataclasses import dataclass

from codejury.generation.errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class GenLanguage:
    name: str
    aliases: tuple[str, ...]
    fence: str  # the tag of a Markdown code block, e.g. ```cpp
    stop_sequences: tuple[str, ...]


_PY_STOPS = ("\ndef ", "\n#", "\nif ", "\nclass ", "\nprint(")
_JS_STOPS = ("\nfunction ", "\n/*", "\n//", "\nconsole.log")
_TABLE = (
    GenLanguage("python", ("py", "python3"), "python", _PY_STOPS),
    GenLanguage("cpp", ("c++", "cxx"), "cpp", ("\n}",)),
    GenLanguage("java", (), "java", ("\n    }\n",)),
    GenLanguage("php", (), "php", ("\nfunction", "\n?>", "\n//", "\n#")),
    GenLanguage("typescript", ("ts",), "typescript", _JS_STOPS),
    GenLanguage("csharp", ("cs", "c#"), "csharp", ("\n    }\n",)),
    GenLanguage("bash", ("sh", "shell"), "bash", ("\n}",)),
    GenLanguage("javascript", ("js", "node"), "javascript", _JS_STOPS),
    GenLanguage("go", ("golang",), "go", ("\nfunc", "struct", "\n// ")),
    GenLanguage("rust", ("rs",), "rust", ("\n}",)),
    GenLanguage("ruby", ("rb",), "ruby", ("\nclass", "\ndef", "\n#", "\n\n")),
    GenLanguage("lua", (), "lua", ("\nlocal", "\nfunction", "\n--", "\n\n")),
    GenLanguage("perl", ("pl",), "perl", ("\nsub", "\n#", "\n\n")),
)

LANGUAGES: dict[str, GenLanguage] = {language.name: language for language in _TABLE}
_BY_ALIAS = {alias: lang for lang in _TABLE for alias in (lang.name, *lang.aliases)}


def get_language(name: str, *, field: str = "problem.language") -> GenLanguage:
    """The language called ``name`` (any alias, case-insensitive); ``field`` names it in errors."""
    if not name.strip():
        raise InvalidRequestError(f"{field} is empty: set it, e.g. 'python'")
    language = _BY_ALIAS.get(name.strip().lower())
    if language is None:
        raise InvalidRequestError(
            f"{field}: unknown language {name!r}: use one of {', '.join(sorted(LANGUAGES))}"
        )
    return language
