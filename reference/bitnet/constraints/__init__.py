"""bitnet.constraints: constrained generation without grammars (JSON and JSON-schema prefixes)."""

from bitnet.constraints.json_constraint import (
    SCHEMA_SUBSET,
    JSONConstraint,
    JSONOutput,
    JSONPrefix,
    JSONSchemaPrefix,
    LiteralPrefix,
    SchemaNode,
)

__all__ = ["JSONPrefix", "JSONSchemaPrefix", "LiteralPrefix", "SchemaNode", "SCHEMA_SUBSET",
           "JSONConstraint", "JSONOutput"]
