"""JSON schema -> GBNF, as llama-cpp-python 0.3.36's `json_schema_to_gbnf` converts it.

    json_schema_to_gbnf('{"type": "object", "properties": {"a": {"type": "integer"}}}')
    # 'a-kv ::= "\\"a\\"" space ":" space integer\\n...root ::= "{" space  (a-kv )? "}" space\\n...'

The output text is the same as llama-cpp-python's (its `SchemaConverter`, itself a port of
llama.cpp's examples/json_schema_to_grammar.py), so a schema constrains generation to the same
language with the same layout: at most one space between tokens, properties in declaration
order (required ones first in the object rule, optional ones chained), strings of
`[^"\\\\]` or escapes, integers/numbers of at most 16 integral digits, `pattern` translated to
GBNF (`^...$` required), `format` date / time / date-time / uuid, `minLength`/`maxLength`,
`minItems`/`maxItems`, `prefixItems`, `enum`/`const`, `anyOf`/`oneOf` (a union), `allOf`
(object properties merged), local `$ref` (recursion included). What the converter does not
know raises, as upstream's does (the callers that want a fallback use plain JSON_GBNF):
`SchemaConversionError` (a ValueError and an AssertionError: upstream asserts) for an
unknown schema shape such as `{"not": ...}` alone, ValueError for an unsupported `$ref` or
quantifier; remote `$ref`s are never fetched. Numeric bounds, `multipleOf`, `uniqueItems`,
`patternProperties` and other keywords the converter does not read are ignored (not enforced).
"""

from __future__ import annotations

import json
import re
from itertools import groupby
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple, Union

SPACE_RULE = '" "?'  # one optional space between tokens keeps the model from running away

INVALID_RULE_CHARS_RE = re.compile(r"[^a-zA-Z0-9-]+")
GRAMMAR_LITERAL_ESCAPE_RE = re.compile(r'[\r\n"]')
GRAMMAR_LITERAL_ESCAPES = {"\r": "\\r", "\n": "\\n", '"': '\\"'}

DOTALL = "[\\U00000000-\\U0010FFFF]"
DOT = "[^\\x0A\\x0D]"
NON_LITERAL_SET = set("|.()[]{}*+?")
ESCAPED_IN_REGEXPS_BUT_NOT_IN_LITERALS = set("[]()|{}*+?")


class SchemaConversionError(ValueError, AssertionError):
    """A schema the converter cannot translate (llama-cpp-python asserts here)."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SchemaConversionError(message)


def _build_repetition(item_rule: str, min_items: int, max_items: Optional[int],
                      separator_rule: Optional[str] = None, item_rule_is_literal: bool = False) -> str:
    """GBNF for `item_rule` repeated min..max times (max None: unbounded), with an optional
    separator between items: `x?`, `x+`, or the expanded form `x x (x (x)?)?`."""
    if not separator_rule:
        if (min_items, max_items) == (0, 1):
            return f"{item_rule}?"
        if min_items == 1 and max_items is None:
            return f"{item_rule}+"
    result = ""
    if min_items > 0:
        if item_rule_is_literal and separator_rule is None:
            result = '"' + item_rule[1:-1] * min_items + '"'
        else:
            result = (f" {separator_rule} " if separator_rule else " ").join([item_rule] * min_items)

    def optional(up_to: int, prefix_with_sep: bool) -> str:
        """(a (a (a)?)?)?, ("," a ("," a)?)?, (a ("," a)?)?: up to `up_to` more items."""
        content = f"{separator_rule} {item_rule}" if prefix_with_sep and separator_rule else item_rule
        if up_to == 0:
            return ""
        if up_to == 1:
            return f"({content})?"
        if separator_rule and not prefix_with_sep:
            return f"({content} {optional(up_to - 1, True)})?"
        return (f"({content} " * up_to).rstrip() + ")?" * up_to

    if min_items > 0 and max_items != min_items:
        result += " "
    if max_items is not None:
        return result + optional(max_items - min_items, min_items > 0)
    item_operator = f"({separator_rule + ' ' if separator_rule else ''}{item_rule})"
    if min_items == 0 and separator_rule:
        return f"({item_rule} {item_operator}*)?"
    return result + f"{item_operator}*"


class BuiltinRule:
    """A predefined rule: its GBNF text and the rules it refers to."""

    def __init__(self, content: str, deps: Optional[List[str]] = None) -> None:
        self.content = content
        self.deps = deps or []


_UP_TO_15_DIGITS = _build_repetition("[0-9]", 0, 15)

PRIMITIVE_RULES: Dict[str, BuiltinRule] = {
    "boolean": BuiltinRule('("true" | "false") space'),
    "decimal-part": BuiltinRule("[0-9] " + _UP_TO_15_DIGITS),
    "integral-part": BuiltinRule("[0-9] | [1-9] " + _UP_TO_15_DIGITS),
    "number": BuiltinRule('("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space',
                          ["integral-part", "decimal-part"]),
    "integer": BuiltinRule('("-"? integral-part) space', ["integral-part"]),
    "value": BuiltinRule("object | array | string | number | boolean | null",
                         ["object", "array", "string", "number", "boolean", "null"]),
    "object": BuiltinRule(
        '"{" space ( string ":" space value ("," space string ":" space value)* )? "}" space',
        ["string", "value"]),
    "array": BuiltinRule('"[" space ( value ("," space value)* )? "]" space', ["value"]),
    "uuid": BuiltinRule(r'"\"" ' + ' "-" '.join("[0-9a-fA-F]" * n for n in (8, 4, 4, 4, 12))
                        + r' "\"" space'),
    "char": BuiltinRule(
        r'[^"\\] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'),
    "string": BuiltinRule(r'"\"" char* "\"" space', ["char"]),
    "null": BuiltinRule('"null" space'),
}

STRING_FORMAT_RULES: Dict[str, BuiltinRule] = {
    "date": BuiltinRule(
        '[0-9] [0-9] [0-9] [0-9] "-" ( "0" [1-9] | "1" [0-2] ) "-" '
        '( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )'),
    "time": BuiltinRule(
        '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9] [0-9] [0-9] )? '
        '( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )'),
    "date-time": BuiltinRule('date "T" time', ["date", "time"]),
    "date-string": BuiltinRule('"\\"" date "\\"" space', ["date"]),
    "time-string": BuiltinRule('"\\"" time "\\"" space', ["time"]),
    "date-time-string": BuiltinRule('"\\"" date-time "\\"" space', ["date-time"]),
}

RESERVED_NAMES = {"root", "dot", *PRIMITIVE_RULES, *STRING_FORMAT_RULES}

Unit = Tuple[str, bool]  # (GBNF text, is it a literal's inner text)


class SchemaConverter:
    """Rules collected while visiting a schema; `format_grammar()` prints them sorted."""

    def __init__(self, *, prop_order: Dict[str, int], allow_fetch: bool, dotall: bool,
                 raw_pattern: bool) -> None:
        self._prop_order = prop_order
        self._allow_fetch = allow_fetch
        self._dotall = dotall
        self._raw_pattern = raw_pattern
        self._rules: Dict[str, str] = {"space": SPACE_RULE}
        self._refs: Dict[str, Any] = {}
        self._refs_being_resolved: Set[str] = set()

    # --- rules -----------------------------------------------------------------------------
    def _format_literal(self, literal: str) -> str:
        escaped = GRAMMAR_LITERAL_ESCAPE_RE.sub(lambda m: GRAMMAR_LITERAL_ESCAPES[m.group(0)], literal)
        return f'"{escaped}"'

    def not_literal(self, literal: str, dotall: bool = True, maybe_escaped_underscores: bool = False) -> str:
        """GBNF for any text that does not start with `literal`:
        not_literal('abc') -> '([^a] | "a" ([^b] | "b" ([^c])?)?)'."""
        _check(len(literal) > 0, "Empty literal not supported")
        out = "("
        for i, c in enumerate(literal):
            if maybe_escaped_underscores and c == "_":
                out += f'[^{c}\\\\] | "\\\\"? "{c}"'
            else:
                out += f"[^{c}]"
            if i < len(literal) - 1:
                out += f" | {self._format_literal(c)} ("
        return out + ")?" * (len(literal) - 1) + ")"

    def _add_rule(self, name: str, rule: str) -> str:
        """Register `rule` under `name` (made a valid rule name; a numbered variant if the
        name is taken by another rule); returns the name used."""
        esc_name = INVALID_RULE_CHARS_RE.sub("-", name)
        key = esc_name
        if esc_name in self._rules and self._rules[esc_name] != rule:
            i = 0
            while f"{esc_name}{i}" in self._rules and self._rules[f"{esc_name}{i}"] != rule:
                i += 1
            key = f"{esc_name}{i}"
        self._rules[key] = rule
        return key

    def _add_primitive(self, name: str, rule: BuiltinRule) -> str:
        n = self._add_rule(name, rule.content)
        for dep in rule.deps:
            dep_rule = PRIMITIVE_RULES.get(dep) or STRING_FORMAT_RULES.get(dep)
            _check(dep_rule is not None, f"Rule {dep} not known")
            if dep not in self._rules:
                self._add_primitive(dep, dep_rule)  # type: ignore[arg-type]
        return n

    def format_grammar(self) -> str:
        return "\n".join(f"{name} ::= {rule}" for name, rule in sorted(self._rules.items()))

    # --- $ref ------------------------------------------------------------------------------
    def resolve_refs(self, schema: Any, url: str) -> Any:
        """Record every local `$ref` target (refs rewritten to `url#/...`); remote refs are
        refused (fetching is not supported here)."""

        def visit(n: Any) -> Any:
            if isinstance(n, list):
                return [visit(x) for x in n]
            if not isinstance(n, dict):
                return n
            ref = n.get("$ref")
            if ref is None or ref in self._refs:
                for v in n.values():
                    visit(v)
                return n
            if ref.startswith("https://"):
                _check(self._allow_fetch,
                       "Fetching remote schemas is not allowed (use --allow-fetch for force)")
                raise NotImplementedError(f"remote $ref {ref!r}: fetching schemas is not supported")
            if not ref.startswith("#/"):
                raise ValueError(f"Unsupported ref {ref}")
            ref = f"{url}{ref}"
            n["$ref"] = ref
            target = schema
            for sel in ref.split("#")[-1].split("/")[1:]:
                _check(target is not None and sel in target,
                       f"Error resolving ref {ref}: {sel} not in {target}")
                target = target[sel]
            self._refs[ref] = target
            return n

        return visit(schema)

    def _resolve_ref(self, ref: str) -> str:
        ref_name = ref.split("/")[-1]
        if ref_name not in self._rules and ref not in self._refs_being_resolved:
            self._refs_being_resolved.add(ref)
            ref_name = self.visit(self._refs[ref], ref_name)
            self._refs_being_resolved.remove(ref)
        return ref_name

    # --- schemas ---------------------------------------------------------------------------
    def _generate_union_rule(self, name: str, alt_schemas: List[Any]) -> str:
        return " | ".join(self.visit(alt, f"{name}{'-' if name else 'alternative-'}{i}")
                          for i, alt in enumerate(alt_schemas))

    def _generate_constant_rule(self, value: Any) -> str:
        return self._format_literal(json.dumps(value))

    def visit(self, schema: Dict[str, Any], name: str) -> str:  # noqa: C901 (one case per keyword)
        """The rule name for `schema` (registering the rules it needs); the first keyword
        that applies wins, in llama-cpp-python's order."""
        schema_type: Any = schema.get("type")
        schema_format: Any = schema.get("format")
        rule_name = name + "-" if name in RESERVED_NAMES else name or "root"
        ref = schema.get("$ref")
        if ref is not None:
            return self._add_rule(rule_name, self._resolve_ref(ref))
        if "oneOf" in schema or "anyOf" in schema:
            return self._add_rule(rule_name, self._generate_union_rule(
                name, schema.get("oneOf") or schema["anyOf"]))
        if isinstance(schema_type, list):
            return self._add_rule(rule_name, self._generate_union_rule(
                name, [{"type": t} for t in schema_type]))
        if "const" in schema:
            return self._add_rule(rule_name, self._generate_constant_rule(schema["const"]))
        if "enum" in schema:
            return self._add_rule(rule_name, " | ".join(
                self._generate_constant_rule(v) for v in schema["enum"]))
        if schema_type in (None, "object") and (
                "properties" in schema
                or ("additionalProperties" in schema and schema["additionalProperties"] is not True)):
            return self._add_rule(rule_name, self._build_object_rule(
                list(schema.get("properties", {}).items()), set(schema.get("required", [])), name,
                schema.get("additionalProperties")))
        if schema_type in (None, "object") and "allOf" in schema:
            return self._add_rule(rule_name, self._all_of_rule(schema["allOf"], name))
        if schema_type in (None, "array") and ("items" in schema or "prefixItems" in schema):
            return self._add_rule(rule_name, self._array_rule(schema, name))
        if schema_type in (None, "string") and "pattern" in schema:
            return self._visit_pattern(schema["pattern"], rule_name)
        if schema_type in (None, "string") and re.match(r"^uuid[1-5]?$", schema_format or ""):
            return self._add_primitive("root" if rule_name == "root" else schema_format,
                                       PRIMITIVE_RULES["uuid"])
        if schema_type in (None, "string") and f"{schema_format}-string" in STRING_FORMAT_RULES:
            prim_name = f"{schema_format}-string"
            return self._add_rule(rule_name, self._add_primitive(prim_name, STRING_FORMAT_RULES[prim_name]))
        if schema_type == "string" and ("minLength" in schema or "maxLength" in schema):
            char_rule = self._add_primitive("char", PRIMITIVE_RULES["char"])
            body = _build_repetition(char_rule, schema.get("minLength", 0), schema.get("maxLength"))
            return self._add_rule(rule_name, r'"\"" ' + body + r' "\"" space')
        if schema_type == "object" or len(schema) == 0:
            return self._add_rule(rule_name, self._add_primitive("object", PRIMITIVE_RULES["object"]))
        _check(schema_type in PRIMITIVE_RULES, f"Unrecognized schema: {schema}")
        return self._add_primitive("root" if rule_name == "root" else schema_type,
                                   PRIMITIVE_RULES[schema_type])

    def _all_of_rule(self, parts: List[Any], name: str) -> str:
        """allOf of objects: their properties merged (required where the part is not inside
        an anyOf), no additional properties."""
        required: Set[str] = set()
        properties: List[Tuple[str, Any]] = []

        def add_component(comp_schema: Dict[str, Any], is_required: bool) -> None:
            ref = comp_schema.get("$ref")
            if ref is not None:
                comp_schema = self._refs[ref]
            for prop_name, prop_schema in comp_schema.get("properties", {}).items():
                properties.append((prop_name, prop_schema))
                if is_required:
                    required.add(prop_name)

        for t in parts:
            if "anyOf" in t:
                for tt in t["anyOf"]:
                    add_component(tt, is_required=False)
            else:
                add_component(t, is_required=True)
        return self._build_object_rule(properties, required, name, additional_properties=[])

    def _array_rule(self, schema: Dict[str, Any], name: str) -> str:
        items = schema.get("items") or schema["prefixItems"]
        sep = f"{name}{'-' if name else ''}"
        if isinstance(items, list):
            return ('"[" space ' + ' "," space '.join(
                self.visit(item, f"{sep}tuple-{i}") for i, item in enumerate(items)) + ' "]" space')
        item_rule_name = self.visit(items, f"{sep}item")
        return ('"[" space ' + _build_repetition(item_rule_name, schema.get("minItems", 0),
                                                 schema.get("maxItems"), separator_rule='"," space')
                + ' "]" space')

    def _build_object_rule(self, properties: List[Tuple[str, Any]], required: Set[str], name: str,
                           additional_properties: Union[bool, Any]) -> str:
        """`{` required members in order, then optional ones as a chain of `-rest` rules `}`."""
        prop_order = self._prop_order
        sorted_props = [kv[0] for _, kv in sorted(
            enumerate(properties), key=lambda ikv: (prop_order.get(ikv[1][0], len(prop_order)), ikv[0]))]
        sep = f"{name}{'-' if name else ''}"
        kv_rules: Dict[str, str] = {}
        for prop_name, prop_schema in properties:
            prop_rule_name = self.visit(prop_schema, f"{sep}{prop_name}")
            kv_rules[prop_name] = self._add_rule(
                f"{sep}{prop_name}-kv",
                rf'{self._format_literal(json.dumps(prop_name))} space ":" space {prop_rule_name}')
        required_props = [k for k in sorted_props if k in required]
        optional_props = [k for k in sorted_props if k not in required]
        # subtle: `== True` as upstream (additionalProperties: 1 counts too)
        if additional_properties == True or isinstance(additional_properties, dict):  # noqa: E712
            value_schema: Any = {} if additional_properties == True else additional_properties  # noqa: E712
            value_rule = self.visit(value_schema, f"{sep}additional-value")
            kv_rules["*"] = self._add_rule(
                f"{sep}additional-kv",
                self._add_primitive("string", PRIMITIVE_RULES["string"]) + f' ":" space {value_rule}')
            optional_props.append("*")

        def recursive_refs(ks: List[str], first_is_optional: bool) -> str:
            k, rest = ks[0], ks[1:]
            if k == "*":
                res = self._add_rule(f"{sep}additional-kvs", f'{kv_rules[k]} ( "," space {kv_rules[k]} )*')
            elif first_is_optional:
                res = f'( "," space {kv_rules[k]} )?'
            else:
                res = kv_rules[k]
            if rest:
                res += " " + self._add_rule(f"{sep}{k}-rest", recursive_refs(rest, True))
            return res

        rule = '"{" space ' + ' "," space '.join(kv_rules[k] for k in required_props)
        if optional_props:
            rule += " ("
            if required_props:
                rule += ' "," space ( '
            rule += " | ".join(recursive_refs(optional_props[i:], False) for i in range(len(optional_props)))
            if required_props:
                rule += " )"
            rule += " )?"
        return rule + ' "}" space'

    # --- pattern ---------------------------------------------------------------------------
    def _visit_pattern(self, pattern: str, name: str) -> str:
        """A `^...$` regular expression as a GBNF rule (a JSON string unless raw_pattern).
        Groups, alternation, classes, `.`, `* + ?` and `{m,n}` (sub-rules) translate; lookaround
        and lazy quantifiers do not."""
        _check(pattern.startswith("^") and pattern.endswith("$"),
               'Pattern must start with "^" and end with "$"')
        body = _PatternTranslator(self, pattern[1:-1], name).translate()
        if self._raw_pattern:
            return self._add_rule(name, body)
        return self._add_rule(name, '"\\"" ' + body + ' "\\"" space')


class _PatternTranslator:
    """One regular expression -> GBNF (a recursive descent over `pattern`, position `i`)."""

    def __init__(self, converter: SchemaConverter, pattern: str, name: str) -> None:
        self.conv = converter
        self.pattern = pattern
        self.name = name
        self.i = 0
        self.sub_rule_ids: Dict[str, str] = {}

    def translate(self) -> str:
        return self.to_rule(self.transform())

    @staticmethod
    def to_rule(unit: Unit) -> str:
        text, is_literal = unit
        return '"' + text + '"' if is_literal else text

    def get_dot(self) -> str:
        return self.conv._add_rule("dot", DOTALL if self.conv._dotall else DOT)

    def join_seq(self, seq: List[Unit]) -> Unit:
        ret: List[Unit] = []
        for is_literal, g in groupby(seq, lambda x: x[1]):
            if is_literal:
                ret.append(("".join(x[0] for x in g), True))
            else:
                ret.extend(g)
        if len(ret) == 1:
            return ret[0]
        # subtle: upstream joins `seq`, not the merged `ret`
        return " ".join(self.to_rule(x) for x in seq), False

    def transform(self) -> Unit:
        """Parse a sequence at `i` (up to a ')' or the end) into one unit."""
        pattern, length = self.pattern, len(self.pattern)
        start = self.i
        seq: List[Unit] = []
        while self.i < length:
            c = pattern[self.i]
            if c == ".":
                seq.append((self.get_dot(), False))
                self.i += 1
            elif c == "(":
                self.i += 1
                if self.i < length:
                    _check(pattern[self.i] != "?",
                           f'Unsupported pattern syntax "{pattern[self.i]}" at index {self.i} of /{pattern}/')
                seq.append((f"({self.to_rule(self.transform())})", False))
            elif c == ")":
                self.i += 1
                _check(start > 0 and pattern[start - 1] == "(",
                       f"Unbalanced parentheses; start = {start}, i = {self.i}, pattern = {pattern}")
                return self.join_seq(seq)
            elif c == "[":
                seq.append((self.bracket(start), False))
            elif c == "|":
                seq.append(("|", False))
                self.i += 1
            elif c in ("*", "+", "?"):
                seq[-1] = (self.to_rule(seq[-1]) + c, False)
                self.i += 1
            elif c == "{":
                seq[-1] = (self.braces(seq[-1], start), False)
            else:
                at = self.i
                literal = self.literal()
                # subtle: upstream loops forever on a stray "]" or "}"; this names it instead
                _check(self.i > at, f'Unsupported pattern syntax "{c}" at index {at} of /{pattern}/')
                if literal:
                    seq.append((literal, True))
        return self.join_seq(seq)

    def bracket(self, start: int) -> str:
        pattern, length = self.pattern, len(self.pattern)
        text = "["
        self.i += 1
        while self.i < length and pattern[self.i] != "]":
            step = 2 if pattern[self.i] == "\\" else 1
            text += pattern[self.i : self.i + step]
            self.i += step
        _check(self.i < length,
               f"Unbalanced square brackets; start = {start}, i = {self.i}, pattern = {pattern}")
        self.i += 1
        return text + "]"

    def braces(self, last: Unit, start: int) -> str:
        pattern, length = self.pattern, len(self.pattern)
        text = "{"
        self.i += 1
        while self.i < length and pattern[self.i] != "}":
            text += pattern[self.i]
            self.i += 1
        _check(self.i < length,
               f"Unbalanced curly brackets; start = {start}, i = {self.i}, pattern = {pattern}")
        text += "}"
        self.i += 1
        nums = [s.strip() for s in text[1:-1].split(",")]
        _check(len(nums) <= 2, f"Invalid quantifier {text} in /{pattern}/")
        try:
            if len(nums) == 1:
                min_times = int(nums[0])
                max_times: Optional[int] = min_times
            else:
                min_times = int(nums[0]) if nums[0] else 0
                max_times = int(nums[1]) if nums[1] else None
        except ValueError:
            raise ValueError(f"Invalid quantifier {text} in /{pattern}/") from None
        sub, sub_is_literal = last
        if not sub_is_literal:
            rule_id = self.sub_rule_ids.get(sub)
            if rule_id is None:
                rule_id = self.conv._add_rule(f"{self.name}-{len(self.sub_rule_ids) + 1}", sub)
                self.sub_rule_ids[sub] = rule_id
            sub = rule_id
        return _build_repetition(f'"{sub}"' if sub_is_literal else sub, min_times, max_times,
                                 item_rule_is_literal=sub_is_literal)

    def literal(self) -> str:
        """The longest literal run at `i` (a char followed by a quantifier stays alone)."""
        pattern, length = self.pattern, len(self.pattern)
        out = ""
        while self.i < length:
            c = pattern[self.i]
            if c == "\\" and self.i < length - 1:
                nxt = pattern[self.i + 1]
                if nxt in ESCAPED_IN_REGEXPS_BUT_NOT_IN_LITERALS:
                    out += nxt
                else:
                    out += pattern[self.i : self.i + 2]
                self.i += 2
            elif c == '"' and not self.conv._raw_pattern:
                out += '\\"'
                self.i += 1
            elif c not in NON_LITERAL_SET and (
                    self.i == length - 1 or out == "" or pattern[self.i + 1] == "."
                    or pattern[self.i + 1] not in NON_LITERAL_SET):
                out += c
                self.i += 1
            else:
                break
        return out


def json_schema_to_gbnf(schema: str, prop_order: Optional[List[str]] = None) -> str:
    """The GBNF grammar (root rule "root") of a JSON schema given as JSON text."""
    converter = SchemaConverter(prop_order={n: i for i, n in enumerate(prop_order or [])},
                                allow_fetch=False, dotall=False, raw_pattern=False)
    parsed = converter.resolve_refs(json.loads(schema), "stdin")
    converter.visit(parsed, "")
    return converter.format_grammar()


LAX_CHAR = 'char ::= [^"\\\\] |'
STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def strict_json_strings(grammar: str) -> str:
    """`grammar` (a converter output) with JSON strings that exclude raw control characters and
    DEL, as llama.cpp's JSON_GBNF and its C++ converter write them; llama-cpp-python's `char`
    rule lets them through, which makes invalid JSON."""
    return grammar.replace(LAX_CHAR, STRICT_CHAR)


def iter_rule_names(grammar: str) -> Iterator[str]:
    """The rule names defined in a converter output (one `name ::= ...` per line)."""
    for line in grammar.splitlines():
        if " ::= " in line:
            yield line.split(" ::= ", 1)[0]
