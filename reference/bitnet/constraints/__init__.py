"""bitnet.constraints: constrained generation.

- GBNF grammars, llama.cpp's format and semantics: `gbnf` (parser), `grammar` (the reference
  recognizer: pushdown stacks over code points), `grammar_constraint` (token-level masks and
  the sampler stage), `schema_gbnf` (JSON schema -> GBNF as llama-cpp-python converts it).
- A JSON prefix automaton without grammars (`JSONPrefix`, `JSONSchemaPrefix`, `JSONOutput`):
  `json_constraint`.

Every state object offers copy() / push(bytes) -> bool / complete / finished.
"""

from bitnet.constraints.gbnf import Grammar, GrammarError, parse_gbnf
from bitnet.constraints.grammar import CompiledGrammar, GrammarPrefix
from bitnet.constraints.grammar_constraint import GrammarConstraint, GrammarSampler, VocabPieces
from bitnet.constraints.json_constraint import (
    SCHEMA_SUBSET,
    JSONConstraint,
    JSONOutput,
    JSONPrefix,
    JSONSchemaPrefix,
    LiteralPrefix,
    SchemaNode,
)
from bitnet.constraints.schema_gbnf import SchemaConversionError, json_schema_to_gbnf

__all__ = ["JSONPrefix", "JSONSchemaPrefix", "LiteralPrefix", "SchemaNode", "SCHEMA_SUBSET",
           "JSONConstraint", "JSONOutput", "Grammar", "GrammarError", "parse_gbnf",
           "CompiledGrammar", "GrammarPrefix", "GrammarConstraint", "GrammarSampler", "VocabPieces",
           "SchemaConversionError", "json_schema_to_gbnf"]
