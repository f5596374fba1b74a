"""GBNF grammars for `grammar=` (`llama_cpp.llama_grammar`).

    grammar = LlamaGrammar.from_string('root ::= "yes" | "no"')
    llm("Is water wet? Answer:", grammar=grammar)["choices"][0]["text"]   # "yes" or "no"
    LlamaGrammar.from_json_schema(json.dumps({"type": "object", ...}))

A `LlamaGrammar` holds the GBNF text and its root rule, as llama-cpp-python's does; `Llama`
samples with it the way llama.cpp's grammar sampler does (`bitnet.constraints.
grammar_constraint`). Unlike llama-cpp-python, which hands the text to llama.cpp only when
sampling (a bad grammar then fails inside llama.cpp), `from_string` parses it at once and
raises `GrammarError` (a ValueError) with llama.cpp's message. `json_schema_to_gbnf` and
`SchemaConverter` produce llama-cpp-python's text for the same schema
(`bitnet.constraints.schema_gbnf`); the `*_GBNF` constants are llama.cpp's example grammars.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any, Callable, List, Optional, Union

from bitnet.constraints.gbnf import DEFAULT_ROOT, GrammarError, parse_gbnf
from bitnet.constraints.grammar import CompiledGrammar
from bitnet.constraints.schema_gbnf import (  # noqa: F401 (llama_cpp.llama_grammar's names)
    DOT,
    DOTALL,
    ESCAPED_IN_REGEXPS_BUT_NOT_IN_LITERALS,
    GRAMMAR_LITERAL_ESCAPE_RE,
    GRAMMAR_LITERAL_ESCAPES,
    INVALID_RULE_CHARS_RE,
    NON_LITERAL_SET,
    PRIMITIVE_RULES,
    RESERVED_NAMES,
    SPACE_RULE,
    STRING_FORMAT_RULES,
    BuiltinRule,
    SchemaConversionError,
    SchemaConverter,
    json_schema_to_gbnf,
)

LLAMA_GRAMMAR_DEFAULT_ROOT = DEFAULT_ROOT


class LlamaGrammar:
    """A GBNF grammar (text `_grammar`, start rule `_root`), checked when created."""

    def __init__(self, *args: Any, _grammar: str, **kwargs: Any) -> None:
        self._grammar = _grammar
        self._root = LLAMA_GRAMMAR_DEFAULT_ROOT
        named: List[str] = []

        def placeholder(text: str) -> List[int]:
            named.append(text)
            return [0]

        parse_gbnf(_grammar, placeholder, self._root)  # GrammarError if llama.cpp would refuse it
        self._named_tokens = tuple(named)  # `<text>` tokens: resolved per vocabulary
        self._lock = threading.Lock()
        self._shared: Optional[CompiledGrammar] = None
        self._per_vocab: Any = weakref.WeakKeyDictionary()

    @classmethod
    def from_string(cls, grammar: str, verbose: bool = True) -> LlamaGrammar:
        """The grammar in GBNF text `grammar` (GrammarError, a ValueError, if malformed)."""
        return cls(_grammar=grammar)

    @classmethod
    def from_file(cls, file: Union[str, Path], verbose: bool = True) -> LlamaGrammar:
        """The grammar in a GBNF file."""
        try:
            with open(file, encoding="utf-8") as f:
                grammar = f.read()
        except Exception as err:
            raise Exception(f"{cls.from_file.__name__}: error reading grammar file: {err}") from err
        if grammar:
            return cls.from_string(grammar, verbose=verbose)
        raise ValueError(f"{cls.from_file.__name__}: error parsing grammar file: params_grammer is empty")

    @classmethod
    def from_json_schema(cls, json_schema: str, verbose: bool = True) -> LlamaGrammar:
        """The grammar of a JSON schema (JSON text), as llama-cpp-python converts it."""
        return cls.from_string(json_schema_to_gbnf(json_schema), verbose=verbose)

    def compile(self, vocab_key: Any = None,
                token_ids: Optional[Callable[[str], List[int]]] = None) -> CompiledGrammar:
        """The recognizer of this grammar (bitnet extension). `<text>` tokens are resolved
        with `token_ids` (tokenize with special-token parsing), once per `vocab_key`."""
        with self._lock:
            if not self._named_tokens:
                if self._shared is None:
                    self._shared = CompiledGrammar(parse_gbnf(self._grammar, None, self._root), self._root)
                return self._shared
            if token_ids is None or vocab_key is None:
                raise GrammarError(f"no vocab to parse token {self._named_tokens[0]}")
            compiled = self._per_vocab.get(vocab_key)
            if compiled is None:
                compiled = CompiledGrammar(parse_gbnf(self._grammar, token_ids, self._root), self._root)
                self._per_vocab[vocab_key] = compiled
            return compiled

    def __repr__(self) -> str:
        return f"LlamaGrammar(root={self._root!r}, {len(self._grammar)} chars)"


"""llama.cpp's example grammars (llama.cpp/grammars), as llama-cpp-python ships them."""

ARITHMETIC_GBNF = r"""
root  ::= (expr "=" ws term "\n")+
expr  ::= term ([-+*/] term)*
term  ::= ident | num | "(" ws expr ")" ws
ident ::= [a-z] [a-z0-9_]* ws
num   ::= [0-9]+ ws
ws    ::= [ \t\n]*
"""

C_GBNF = r"""
root ::= (declaration)*

declaration ::= dataType identifier "(" parameter? ")" "{" statement* "}"

dataType  ::= "int" ws | "float" ws | "char" ws
identifier ::= [a-zA-Z_] [a-zA-Z_0-9]*

parameter ::= dataType identifier

statement ::=
    ( dataType identifier ws "=" ws expression ";" ) |
    ( identifier ws "=" ws expression ";" ) |
    ( identifier ws "(" argList? ")" ";" ) |
    ( "return" ws expression ";" ) |
    ( "while" "(" condition ")" "{" statement* "}" ) |
    ( "for" "(" forInit ";" ws condition ";" ws forUpdate ")" "{" statement* "}" ) |
    ( "if" "(" condition ")" "{" statement* "}" ("else" "{" statement* "}")? ) |
    ( singleLineComment ) |
    ( multiLineComment )

forInit ::= dataType identifier ws "=" ws expression | identifier ws "=" ws expression
forUpdate ::= identifier ws "=" ws expression

condition ::= expression relationOperator expression
relationOperator ::= ("<=" | "<" | "==" | "!=" | ">=" | ">")

expression ::= term (("+" | "-") term)*
term ::= factor(("*" | "/") factor)*

factor ::= identifier | number | unaryTerm | funcCall | parenExpression
unaryTerm ::= "-" factor
funcCall ::= identifier "(" argList? ")"
parenExpression ::= "(" ws expression ws ")"

argList ::= expression ("," ws expression)*

number ::= [0-9]+

singleLineComment ::= "//" [^\n]* "\n"
multiLineComment ::= "/*" ( [^*] | ("*" [^/]) )* "*/"

ws ::= ([ \t\n]+)
"""

CHESS_GBNF = r"""
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\] |
    "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F]) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]*)) ("." [0-9]+)? ([eE] [-+]? [0-9]+)? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= ([ \t\n] ws)?
"""

JAPANESE_GBNF = CHESS_GBNF  # llama-cpp-python ships the same text under both names


JSON_ARR_GBNF = r"""
# This is the same as json.gbnf but we restrict whitespaces at the end of the root array
# Useful for generating JSON arrays

root   ::= arr
value  ::= object | array | string | number | ("true" | "false" | "null") ws

arr  ::=
  "[\n" ws (
            value
    (",\n" ws value)*
  )? "]"

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F]) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]*)) ("." [0-9]+)? ([eE] [-+]? [0-9]+)? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= ([ \t\n] ws)?
"""

JSON_GBNF = r"""
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= | " " | "\n" [ \t]{0,20}
"""

LIST_GBNF = r"""
root ::= item+

# Excludes various line break characters
item ::= "- " [^\r\n\x0b\x0c\x85\u2028\u2029]+ "\n"
"""

__all__ = [
    "LlamaGrammar", "LLAMA_GRAMMAR_DEFAULT_ROOT", "GrammarError", "json_schema_to_gbnf",
    "SchemaConverter", "SchemaConversionError", "BuiltinRule", "PRIMITIVE_RULES",
    "STRING_FORMAT_RULES", "RESERVED_NAMES", "SPACE_RULE", "DOT", "DOTALL", "NON_LITERAL_SET",
    "ESCAPED_IN_REGEXPS_BUT_NOT_IN_LITERALS", "INVALID_RULE_CHARS_RE", "GRAMMAR_LITERAL_ESCAPE_RE",
    "GRAMMAR_LITERAL_ESCAPES", "ARITHMETIC_GBNF", "C_GBNF", "CHESS_GBNF", "JAPANESE_GBNF",
    "JSON_ARR_GBNF", "JSON_GBNF", "LIST_GBNF",
]
