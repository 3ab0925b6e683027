"""Tricky EnvironmentFile= lines and the values systemd 252 gives a unit for them.

One table for the unit test (ayna_fab.hostprog.envfile.parse) and the e2e test (systemd itself),
so the expectations cannot drift apart. Every key is unique across cases and starts with E_;
a None value means "this key must not be set", and REFUSED instead of a dict "systemd refuses
the whole file: the unit does not start". Texts hold bytes that are not UTF-8 as lone
surrogates (U+DC80-U+DCFF), as read() decodes them; BYTES turns a text back into the file.
"""

from __future__ import annotations

from typing import NamedTuple


REFUSED = None
BYTES = ("utf-8", "surrogateescape")


class Case(NamedTuple):
    name: str
    text: str
    expected: dict[str, str | None] | None


CASES = [
    Case("single quotes are literal", "E_SQ='a \"b\" \\n $HOME'\n", {"E_SQ": 'a "b" \\n $HOME'}),
    Case("backslash before a closing single quote", "E_SQ_BS='a\\'\n", {"E_SQ_BS": "a\\"}),
    Case("double quotes", "E_DQ=\"a 'b' c\"\n", {"E_DQ": "a 'b' c"}),
    Case('\\" inside double quotes', 'E_DQ_ESC="say \\"hi\\""\n', {"E_DQ_ESC": 'say "hi"'}),
    Case("\\\\ inside double quotes", 'E_DQ_BS="C:\\\\dir"\n', {"E_DQ_BS": "C:\\dir"}),
    Case("\\$ and \\` inside double quotes", 'E_DQ_SHELL="\\$HOME \\`id\\`"\n', {"E_DQ_SHELL": "$HOME `id`"}),
    Case("other backslashes in double quotes stay", 'E_DQ_OTHER="a\\nb\\tc\\\'d"\n', {"E_DQ_OTHER": "a\\nb\\tc\\'d"}),
    Case("unquoted backslash escapes the next char", 'E_UQ_BS=a\\nb\\\\c\\"d\n', {"E_UQ_BS": 'anb\\c"d'}),
    Case("unquoted escaped trailing space is kept", "E_UQ_ESCSP=a\\ \n", {"E_UQ_ESCSP": "a "}),
    Case("quotes inside an unquoted value are literal", 'E_INNERQ=a"b c"d\n', {"E_INNERQ": 'a"b c"d'}),
    Case("# at line start", "#E_HASH='x\nE_HASH2=y'\n", {"E_HASH": None, "E_HASH2": "y'"}),
    Case("indented #", "   \t# E_HASH_IND=1\n", {"E_HASH_IND": None}),
    Case("; comment: a quote in it opens nothing", ';E_SEMI="x\nE_SEMI2=y"\n', {"E_SEMI": None, "E_SEMI2": 'y"'}),
    Case("# after a value is part of it", "E_HASH_AFTER=value # not a comment\n",
         {"E_HASH_AFTER": "value # not a comment"}),
    Case("# inside quotes", "E_HASH_Q=\"a # b\"\n", {"E_HASH_Q": "a # b"}),
    Case("a comment ending in \\ swallows the next line (252)", "# note \\\nE_COMMENTED=1\n",
         {"E_COMMENTED": None}),
    Case("export is not a key", "export E_EXPORT=bar\n", {"E_EXPORT": None}),
    Case("key starting with a digit", "1E_DIGIT=x\n", {"1E_DIGIT": None}),
    Case("key with a dash or a space", "E_BAD-KEY=x\nE_A B=1\n", {"E_BAD-KEY": None, "E_A B": None, "B": None}),
    Case("line without =", "E_NOEQ\n", {"E_NOEQ": None}),
    Case("unquoted continuation", "E_CONT=one \\\n  two\n", {"E_CONT": "one   two"}),
    Case("continuation in double quotes", 'E_DQ_CONT="one\\\ntwo"\n', {"E_DQ_CONT": "onetwo"}),
    Case("newline inside quotes", "E_ML=\"l1\nl2\"\nE_ML_SQ='l1\nl2'\n", {"E_ML": "l1\nl2", "E_ML_SQ": "l1\nl2"}),
    Case("empty value", "E_EMPTY=\n", {"E_EMPTY": ""}),
    Case("empty quotes", 'E_EMPTY_Q=""\n', {"E_EMPTY_Q": ""}),
    Case("spaces around key, = and value", "  E_SPACES \t =   spaced  value   \n", {"E_SPACES": "spaced  value"}),
    Case("trailing blanks after a bare value", "E_TRAIL_WS=abc  \t \n", {"E_TRAIL_WS": "abc"}),
    Case("trailing blanks inside quotes stay", 'E_TRAIL_Q= "abc  "   \n', {"E_TRAIL_Q": "abc  "}),
    Case("tab inside a value", "E_TAB_IN=a\tb\n", {"E_TAB_IN": "a\tb"}),
    Case("no expansion", "E_VARS=$HOME ${X} $(id) ~\n", {"E_VARS": "$HOME ${X} $(id) ~"}),
    Case("no expansion in double quotes", 'E_VARS_DQ="${HOME}"\n', {"E_VARS_DQ": "${HOME}"}),
    Case("unicode", "E_UNI=héllo ✓ 日本 🚀\n", {"E_UNI": "héllo ✓ 日本 🚀"}),
    Case("= inside a value", "E_EQ=a=b==c\n", {"E_EQ": "a=b==c"}),
    Case("text after a closing quote is appended, later quotes literal", "E_AFTER=\"x\"y'z'w\n",
         {"E_AFTER": "xy'z'w"}),
    Case("blanks between a closing quote and text vanish", 'E_Q_GAP="a"  b\n', {"E_Q_GAP": "ab"}),
    Case("repeated key: last wins", "E_REP=first\nE_REP=second\nE_REP=last\n", {"E_REP": "last"}),
    Case("CRLF line ending", "E_CRLF=crlf\r\nE_CRLF_Q=\"q\"\r\n", {"E_CRLF": "crlf", "E_CRLF_Q": "q"}),
    Case("a bare CR ends a line", "E_CR1=a\rE_CR2=b\n", {"E_CR1": "a", "E_CR2": "b"}),
    Case("CR inside double quotes", 'E_CR_Q="a\rb"\n', {"E_CR_Q": "a\rb"}),
    Case("unquoted continuation before CRLF", "E_CONT_CRLF=a\\\r\nb\n", {"E_CONT_CRLF": "a"}),
    Case("quoted continuation before CRLF", 'E_DQ_CONT_CRLF="a\\\r\nb"\n', {"E_DQ_CONT_CRLF": "a\\\r\nb"}),
    Case("final line without newline", "E_LAST=end  ", {"E_LAST": "end"}),
    Case("final line ends inside quotes", 'E_LAST_Q="open', {"E_LAST_Q": "open"}),
    Case("bytes that are not UTF-8 in a comment", "# caf\udce9\nE_COMMENT_LATIN1=1\n", {"E_COMMENT_LATIN1": "1"}),
    Case("bytes that are not UTF-8 in a line without =", "E_\udcff\nE_NOEQ_LATIN1=1\n", {"E_NOEQ_LATIN1": "1"}),
    Case("refused: a NUL anywhere", "E_NUL_OK=1\n# \0\n", REFUSED),
    Case("refused: not UTF-8 in a value", "E_LATIN1=caf\udce9\n", REFUSED),
    Case("refused: not UTF-8 in quotes", "E_LATIN1_Q='caf\udce9'\n", REFUSED),
    Case("refused: not UTF-8 in an invalid key", "\udcff=1\nE_OK=1\n", REFUSED),
    Case("refused: an encoded surrogate (CESU-8)", "E_CESU=\udced\udca0\udc80\n", REFUSED),
    Case("refused: noncharacter U+FFFE", "E_NONCHAR=\ufffe\n", REFUSED),
    Case("refused: noncharacter U+FDD0", "E_NONCHAR2=\ufdd0\n", REFUSED),
    Case("refused: noncharacter U+10FFFF", "E_NONCHAR3=\U0010ffff\n", REFUSED),
]
ACCEPTED = [c for c in CASES if c.expected is not REFUSED]


def concatenated() -> tuple[str, dict[str, str]]:
    """Every case ending with a newline in one file, then one that does not: a whole .env,
    where a case that leaks into the next line shows. Returns (text, expected variables)."""
    body = [c for c in ACCEPTED if c.text.endswith("\n")]
    cases = body + [next(c for c in ACCEPTED if not c.text.endswith("\n"))]
    return "".join(c.text for c in cases), expected_values(cases)


def expected_values(cases=ACCEPTED) -> dict[str, str]:
    """The variables a unit gets from these cases (keys expected absent left out)."""
    return {k: v for c in cases for k, v in c.expected.items() if v is not None}
