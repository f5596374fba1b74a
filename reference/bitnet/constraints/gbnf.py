"""GBNF, llama.cpp's grammar format: the parser (llama_grammar_parser in llama-grammar.cpp).

    g = parse_gbnf('root ::= "a" [b-d]* | tok\\ntok ::= <[42]>')
    g.rules[g.symbol_ids["root"]]  # [(CHAR, 97), (RULE_REF, 2), (ALT, 0), (RULE_REF, 1), (END, 0)]

The syntax, all of it: rules `name ::= alternatives` (names of [a-zA-Z0-9-]), alternation
`|`, sequences, groups `( ... )`, literals `"..."`, character classes `[a-z0-9_]` and negated
`[^"\\\\]` with ranges, `.` (any character), repetition `* + ? {m} {m,} {m,n}` (expanded into
helper rules exactly as llama.cpp expands them, with its 2000 limit), escapes `\\x.. \\u....
\\U........ \\t \\r \\n \\\\ \\" \\[ \\] \\-`, `#` comments, tokens `<[id]>` / `<text>` (one
vocabulary token) and their negation `!<...>`. A grammar is a list of rules, each a flat list of
(type, value) elements ending in END, with ALT between alternatives — llama.h's
`llama_grammar_element` layout, so the recognizer (`bitnet.constraints.grammar`) and the C
hot path read the same arrays.

Errors: `GrammarError` (a ValueError) with llama.cpp's message ("expecting name at ...",
"Undefined rule identifier 'x'", "unsupported grammar, left recursion detected ...").
Where llama.cpp only logs and returns NULL, this raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

# llama_gretype (llama-grammar.h)
END = 0  # end of rule definition
ALT = 1  # start of alternate definition for rule
RULE_REF = 2  # non-terminal element: reference to rule
CHAR = 3  # terminal element: character (code point)
CHAR_NOT = 4  # inverse char(s) ([^a], [^a-b] [^abc])
CHAR_RNG_UPPER = 5  # modifies a preceding CHAR or CHAR_ALT to be an inclusive range ([a-z])
CHAR_ALT = 6  # modifies a preceding CHAR or CHAR_RNG_UPPER to add an alternate char ([ab], [a-zA])
CHAR_ANY = 7  # any character (.)
TOKEN = 8  # a specific vocabulary token (<[id]> or <text>)
TOKEN_NOT = 9  # any token but one (!<[id]>)

MAX_REPETITION_THRESHOLD = 2000
DEFAULT_ROOT = "root"

Element = Tuple[int, int]  # (type, value)
Rule = List[Element]


class GrammarError(ValueError):
    """A GBNF text llama.cpp refuses; the message is llama.cpp's."""


@dataclass
class Grammar:
    """Parsed GBNF: `rules[id]` (elements ending in END) and `symbol_ids[name] -> id`."""

    text: str
    rules: List[Rule]
    symbol_ids: Dict[str, int]
    names: Dict[int, str] = field(default_factory=dict)  # id -> name (generated ones too)

    def start(self, root: str = DEFAULT_ROOT) -> int:
        """The rule id of `root` (GrammarError if the grammar has none)."""
        if root not in self.symbol_ids:
            raise GrammarError(f"grammar does not contain a '{root}' symbol")
        return self.symbol_ids[root]


def _is_word_char(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z") or c == "-" or ("0" <= c <= "9")


class _Parser:
    """llama_grammar_parser over a str (one Python character per code point)."""

    def __init__(self, text: str, token_ids: Optional[Callable[[str], List[int]]]) -> None:
        self.src = text + "\0"  # subtle: a NUL sentinel, as the C parser reads a C string
        self.token_ids = token_ids
        self.symbol_ids: Dict[str, int] = {}
        self.rules: List[Rule] = []

    # --- lexical helpers (same names as llama-grammar.cpp) ---------------------------------
    def where(self, pos: int) -> str:
        return self.src[pos:-1]

    def parse_space(self, pos: int, newline_ok: bool) -> int:
        s = self.src
        while s[pos] in " \t#" or (newline_ok and s[pos] in "\r\n"):
            if s[pos] == "#":
                while s[pos] not in "\0\r\n":
                    pos += 1
            else:
                pos += 1
        return pos

    def parse_name(self, pos: int) -> int:
        end = pos
        while _is_word_char(self.src[end]):
            end += 1
        if end == pos:
            raise GrammarError(f"expecting name at {self.where(pos)}")
        return end

    def parse_int(self, pos: int) -> int:
        end = pos
        while "0" <= self.src[end] <= "9":
            end += 1
        if end == pos:
            raise GrammarError(f"expecting integer at {self.where(pos)}")
        return end

    def parse_hex(self, pos: int, size: int) -> Tuple[int, int]:
        value, end = 0, pos
        while end < pos + size and self.src[end] != "\0":
            c = self.src[end]
            if c in "0123456789abcdefABCDEF":
                value = value * 16 + int(c, 16)
                end += 1
            else:
                break
        if end != pos + size:
            raise GrammarError(f"expecting {size} hex chars at {self.where(pos)}")
        return value, end

    def parse_char(self, pos: int) -> Tuple[int, int]:
        s = self.src
        if s[pos] == "\\":
            esc = s[pos + 1]
            if esc == "x":
                return self.parse_hex(pos + 2, 2)
            if esc == "u":
                return self.parse_hex(pos + 2, 4)
            if esc == "U":
                return self.parse_hex(pos + 2, 8)
            simple = {"t": 9, "r": 13, "n": 10, "\\": 92, '"': 34, "[": 91, "]": 93, "-": 45}
            if esc in simple:
                return simple[esc], pos + 2
            raise GrammarError(f"unknown escape at {self.where(pos)}")
        if s[pos] != "\0":
            return ord(s[pos]), pos + 1
        raise GrammarError("unexpected end of input")

    def parse_token(self, pos: int) -> Tuple[int, int]:
        s, start = self.src, pos
        if s[pos] != "<":
            raise GrammarError(f"expecting '<' at {self.where(pos)}")
        pos += 1
        if s[pos] == "[":  # <[id]>
            end = self.parse_int(pos + 1)
            token = int(s[pos + 1 : end])
            if token > 0xFFFFFFFF:
                raise GrammarError(f"parsed token id is too big at {self.where(pos + 1)}")
            if s[end] != "]":
                raise GrammarError(f"expecting ']' at {self.where(end)}")
            if s[end + 1] != ">":
                raise GrammarError(f"expecting '>' at {self.where(end + 1)}")
            return token, end + 2
        if self.token_ids is None:
            raise GrammarError(f"no vocab to parse token at {self.where(start)}")
        while s[pos] not in "\0>":
            pos += 1
        if s[pos] != ">":
            raise GrammarError(f"expecting '>' at {self.where(pos)}")
        pos += 1
        text = s[start:pos]
        ids = self.token_ids(text)
        if len(ids) != 1:  # must tokenize to exactly one token
            raise GrammarError(f"invalid token '{text}'")
        return int(ids[0]), pos

    # --- symbols and rules -----------------------------------------------------------------
    def get_symbol_id(self, name: str) -> int:
        return self.symbol_ids.setdefault(name, len(self.symbol_ids))

    def generate_symbol_id(self, base_name: str) -> int:
        next_id = len(self.symbol_ids)
        self.symbol_ids[f"{base_name}_{next_id}"] = next_id
        return next_id

    def add_rule(self, rule_id: int, rule: Rule) -> None:
        while len(self.rules) <= rule_id:
            self.rules.append([])
        self.rules[rule_id] = rule

    def parse_alternates(self, pos: int, rule_name: str, rule_id: int, is_nested: bool) -> int:
        rule: Rule = []
        pos = self.parse_sequence(pos, rule_name, rule, is_nested)
        while self.src[pos] == "|":
            rule.append((ALT, 0))
            pos = self.parse_space(pos + 1, True)
            pos = self.parse_sequence(pos, rule_name, rule, is_nested)
        rule.append((END, 0))
        self.add_rule(rule_id, rule)
        return pos

    def repeat(self, rule: Rule, last_sym_start: int, rule_name: str, n_prev_rules: int,
               min_times: int, max_times: Optional[int], pos: int) -> int:
        """Rewrite the symbol at rule[last_sym_start:] as llama.cpp does; new n_prev_rules.

        S{m,n} -> S..S (m times) S'(n-m), S'(x) ::= S S'(x-1) |, ..., S'(1) ::= S |
        S{m,}  -> S..S (m times) S',      S'    ::= S S' |
        """
        if last_sym_start == len(rule):
            raise GrammarError(f"expecting preceding item to */+/?/{{ at {self.where(pos)}")
        prev = rule[last_sym_start:]
        total = max_times if (max_times is not None and max_times > 0) else (min_times or 1)
        if n_prev_rules * total > MAX_REPETITION_THRESHOLD:
            raise GrammarError(
                "number of rules that are going to be repeated multiplied by the new repetition "
                "exceeds sane defaults, please reduce the number of repetitions or rule complexity")
        if min_times == 0:
            del rule[last_sym_start:]
        else:
            for _ in range(1, min_times):
                rule.extend(prev)
        last_rec_rule_id = 0
        n_opt = 1 if max_times is None else max_times - min_times
        for i in range(n_opt):
            rec_rule_id = self.generate_symbol_id(rule_name)
            rec_rule = list(prev)
            if i > 0 or max_times is None:
                rec_rule.append((RULE_REF, rec_rule_id if max_times is None else last_rec_rule_id))
            rec_rule += [(ALT, 0), (END, 0)]
            self.add_rule(rec_rule_id, rec_rule)
            last_rec_rule_id = rec_rule_id
        if n_opt > 0:
            rule.append((RULE_REF, last_rec_rule_id))
        return n_prev_rules * total

    def parse_braces(self, pos: int, is_nested: bool) -> Tuple[int, Optional[int], int]:
        """`{m}`, `{m,}`, `{m,n}` after the '{': (min, max or None, position after '}')."""
        s = self.src
        pos = self.parse_space(pos, is_nested)
        if not "0" <= s[pos] <= "9":
            raise GrammarError(f"expecting an int at {self.where(pos)}")
        end = self.parse_int(pos)
        min_times = int(s[pos:end])
        pos = self.parse_space(end, is_nested)
        max_times: Optional[int] = None
        if s[pos] == "}":
            max_times = min_times
            pos = self.parse_space(pos + 1, is_nested)
        elif s[pos] == ",":
            pos = self.parse_space(pos + 1, is_nested)
            if "0" <= s[pos] <= "9":
                end = self.parse_int(pos)
                max_times = int(s[pos:end])
                pos = self.parse_space(end, is_nested)
            if s[pos] != "}":
                raise GrammarError(f"expecting '}}' at {self.where(pos)}")
            pos = self.parse_space(pos + 1, is_nested)
        else:
            raise GrammarError(f"expecting ',' at {self.where(pos)}")
        if min_times > MAX_REPETITION_THRESHOLD:
            raise GrammarError("number of repetitions exceeds sane defaults, please reduce the "
                               "number of repetitions")
        if max_times is not None and max_times > MAX_REPETITION_THRESHOLD:
            max_times = None
        return min_times, max_times, pos

    def parse_class(self, pos: int, rule: Rule) -> int:
        """`[...]` after the '[': CHAR / CHAR_NOT, then CHAR_ALT and CHAR_RNG_UPPER elements."""
        s = self.src
        start_type = CHAR
        if s[pos] == "^":
            pos += 1
            start_type = CHAR_NOT
        first = len(rule)
        while s[pos] != "]":
            if s[pos] == "\0":
                raise GrammarError("unexpected end of input")
            c, pos = self.parse_char(pos)
            rule.append((CHAR_ALT if first < len(rule) else start_type, c))
            if s[pos] == "-" and s[pos + 1] != "]":
                if s[pos + 1] == "\0":
                    raise GrammarError("unexpected end of input")
                c, pos = self.parse_char(pos + 1)
                rule.append((CHAR_RNG_UPPER, c))
        return pos + 1

    def parse_sequence(self, pos: int, rule_name: str, rule: Rule, is_nested: bool) -> int:
        s = self.src
        last_sym_start = len(rule)
        n_prev_rules = 1
        while s[pos] != "\0":
            c = s[pos]
            if c == '"':  # literal string
                pos += 1
                last_sym_start, n_prev_rules = len(rule), 1
                while s[pos] != '"':
                    if s[pos] == "\0":
                        raise GrammarError("unexpected end of input")
                    ch, pos = self.parse_char(pos)
                    rule.append((CHAR, ch))
                pos = self.parse_space(pos + 1, is_nested)
            elif c == "[":  # character class
                last_sym_start, n_prev_rules = len(rule), 1
                pos = self.parse_space(self.parse_class(pos + 1, rule), is_nested)
            elif c in "<!":  # token
                kind = TOKEN
                if c == "!":
                    kind = TOKEN_NOT
                    pos += 1
                token, end = self.parse_token(pos)
                last_sym_start, n_prev_rules = len(rule), 1
                rule.append((kind, token))
                pos = self.parse_space(end, is_nested)
            elif _is_word_char(c):  # rule reference
                end = self.parse_name(pos)
                ref = self.get_symbol_id(s[pos:end])
                pos = self.parse_space(end, is_nested)
                last_sym_start, n_prev_rules = len(rule), 1
                rule.append((RULE_REF, ref))
            elif c == "(":  # group: nested alternates in a synthesized rule
                pos = self.parse_space(pos + 1, True)
                n_before = len(self.symbol_ids)
                sub_rule_id = self.generate_symbol_id(rule_name)
                pos = self.parse_alternates(pos, rule_name, sub_rule_id, True)
                n_prev_rules = max(1, len(self.symbol_ids) - n_before)
                last_sym_start = len(rule)
                rule.append((RULE_REF, sub_rule_id))
                if s[pos] != ")":
                    raise GrammarError(f"expecting ')' at {self.where(pos)}")
                pos = self.parse_space(pos + 1, is_nested)
            elif c == ".":
                last_sym_start, n_prev_rules = len(rule), 1
                rule.append((CHAR_ANY, 0))
                pos = self.parse_space(pos + 1, is_nested)
            elif c in "*+?":
                pos = self.parse_space(pos + 1, is_nested)
                lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
                n_prev_rules = self.repeat(rule, last_sym_start, rule_name, n_prev_rules, lo, hi, pos)
            elif c == "{":
                lo, hi_opt, pos = self.parse_braces(pos + 1, is_nested)
                n_prev_rules = self.repeat(rule, last_sym_start, rule_name, n_prev_rules, lo, hi_opt, pos)
            else:
                break
        return pos

    def parse_rule(self, pos: int) -> int:
        s = self.src
        name_end = self.parse_name(pos)
        name = s[pos:name_end]
        pos = self.parse_space(name_end, False)
        rule_id = self.get_symbol_id(name)
        if s[pos : pos + 3] != "::=":
            raise GrammarError(f"expecting ::= at {self.where(pos)}")
        pos = self.parse_space(pos + 3, True)
        pos = self.parse_alternates(pos, name, rule_id, False)
        if s[pos] == "\r":
            pos += 2 if s[pos + 1] == "\n" else 1
        elif s[pos] == "\n":
            pos += 1
        elif s[pos] != "\0":
            raise GrammarError(f"expecting newline or end at {self.where(pos)}")
        return self.parse_space(pos, True)

    def parse(self) -> None:
        pos = self.parse_space(0, True)
        while self.src[pos] != "\0":
            pos = self.parse_rule(pos)
        names = {v: k for k, v in self.symbol_ids.items()}
        for rule in self.rules:
            if not rule:
                raise GrammarError("Undefined rule")
            for kind, value in rule:
                if kind == RULE_REF and (value >= len(self.rules) or not self.rules[value]):
                    raise GrammarError(f"Undefined rule identifier '{names[value]}'")
        if not self.rules:
            raise GrammarError("failed to parse grammar")


def detect_left_recursion(rules: List[Rule]) -> Optional[int]:
    """The index of a left-recursive rule (llama_grammar_detect_left_recursion), or None."""
    n = len(rules)
    visited, in_progress, may_be_empty = [False] * n, [False] * n, [False] * n

    def visit(i: int) -> bool:
        if in_progress[i]:
            return True
        in_progress[i] = True
        at_start = True
        for kind, _ in rules[i]:  # a rule may be empty if some alternative is
            if kind in (END, ALT):
                if at_start:
                    may_be_empty[i] = True
                    break
                at_start = True
            else:
                at_start = False
        leftmost = True  # recurse into leftmost non-terminals while the previous may be empty
        for kind, value in rules[i]:
            if kind == RULE_REF and leftmost:
                if visit(value):
                    return True
                if not may_be_empty[value]:
                    leftmost = False
            else:
                leftmost = kind in (END, ALT)
        in_progress[i] = False
        visited[i] = True
        return False

    for i in range(n):
        if not visited[i] and visit(i):
            return i
    return None


def parse_gbnf(text: str, token_ids: Optional[Callable[[str], List[int]]] = None,
               root: str = DEFAULT_ROOT) -> Grammar:
    """Parse `text`; `token_ids("<text>")` tokenizes a `<text>` token (special tokens parsed;
    exactly one id expected), GrammarError when it is needed and missing.

    Checks what llama_grammar_init_impl checks: the `root` symbol exists, every referenced
    rule is defined, no rule is left-recursive."""
    if not isinstance(text, str):
        raise TypeError(f"grammar text must be str, got {type(text).__name__}")
    if "\0" in text:
        text = text[: text.index("\0")]  # the C parser stops at the first NUL
    parser = _Parser(text, token_ids)
    parser.parse()
    grammar = Grammar(text, parser.rules, dict(parser.symbol_ids),
                      {v: k for k, v in parser.symbol_ids.items()})
    grammar.start(root)
    bad = detect_left_recursion(grammar.rules)
    if bad is not None:
        raise GrammarError(
            f"unsupported grammar, left recursion detected for nonterminal at index {bad}")
    return grammar


def format_rules(grammar: Grammar) -> str:
    """The rules in GBNF, one line each (llama_grammar_parser::print's layout)."""
    lines = []
    for rule_id, rule in enumerate(grammar.rules):
        out: List[str] = []
        for i, (kind, value) in enumerate(rule[:-1]):
            if kind == ALT:
                out.append("| ")
            elif kind == RULE_REF:
                out.append(grammar.names[value] + " ")
            elif kind in (TOKEN, TOKEN_NOT):
                out.append(("!" if kind == TOKEN_NOT else "") + f"<[{value}]> ")
            else:
                text = {CHAR: "[", CHAR_NOT: "[^", CHAR_RNG_UPPER: "-", CHAR_ALT: "",
                        CHAR_ANY: "."}[kind]
                if kind != CHAR_ANY:
                    text += chr(value) if 0x20 <= value <= 0x7F else f"<U+{value:04X}>"
                out.append(text)
                if rule[i + 1][0] not in (CHAR_ALT, CHAR_RNG_UPPER, CHAR_ANY):
                    out.append("] ")
        lines.append(f"{grammar.names[rule_id]} ::= {''.join(out)}")
    return "\n".join(lines) + "\n"
