"""Tool-call arguments from JSON Schemas, validated with jsonschema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from replay.providers.schema import instance_for
from replay.providers.text import rng_for


def check(value: object, schema: Any) -> None:
    """Validate with jsonschema (2020-12, formats checked)."""
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    validator.validate(value)


GET_WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "City and country, e.g. Paris, France"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 10},
        "options": {
            "type": "object",
            "properties": {
                "hourly": {"type": "boolean"},
                "start": {"type": "string", "format": "date"},
                "threshold": {"type": ["number", "null"], "minimum": -50, "maximum": 50},
            },
            "required": ["hourly", "start", "threshold"],
            "additionalProperties": False,
        },
        "fields": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 4},
    },
    "required": ["location", "unit", "days", "options", "fields"],
    "additionalProperties": False,
}

CASES: dict[str, dict[str, Any]] = {
    "get_weather": GET_WEATHER,
    "optional_props": {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["a"],
    },
    "string_lengths": {"type": "string", "minLength": 30, "maxLength": 32},
    "short_string": {"type": "string", "maxLength": 2},
    "formats": {
        "type": "object",
        "properties": {
            f: {"type": "string", "format": f} for f in ("date", "date-time", "email", "uri")
        },
    },
    "pattern_digits": {"type": "string", "pattern": "^[0-9]{5}$"},
    "pattern_upper": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "pattern_examples": {"type": "string", "pattern": "^SKU-\\d{4}$", "examples": ["SKU-1234"]},
    "const": {"const": {"k": [1, 2]}},
    "enum_top": {"enum": ["x", 2, None]},
    "integer_multiple": {"type": "integer", "minimum": 7, "maximum": 40, "multipleOf": 5},
    "integer_exclusive": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 2},
    "number_exclusive": {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 0.6},
    "number_only_max": {"type": "number", "maximum": -3},
    "boolean": {"type": "boolean"},
    "null": {"type": "null"},
    "nullable_list": {"type": ["string", "null"]},
    "null_first": {"type": ["null", "integer"]},
    "unique_enum_items": {
        "type": "array",
        "items": {"enum": ["a", "b", "c"]},
        "minItems": 3,
        "uniqueItems": True,
    },
    "any_of": {"anyOf": [{"type": "integer", "minimum": 3}, {"type": "string"}]},
    "one_of": {"oneOf": [{"type": "string", "maxLength": 3}, {"type": "boolean"}]},
    "all_of": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "integer"}}, "required": ["b"]},
        ]
    },
    "defs_ref": {
        "$defs": {"pt": {"type": "object", "properties": {"x": {"type": "number"}}}},
        "type": "array",
        "items": {"$ref": "#/$defs/pt"},
        "minItems": 2,
    },
    "definitions_ref": {
        "definitions": {"color": {"type": "string", "enum": ["red", "blue"]}},
        "type": "object",
        "properties": {"c": {"$ref": "#/definitions/color"}},
        "required": ["c"],
    },
    "recursive": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["name"],
            }
        },
        "$ref": "#/$defs/node",
    },
    "untyped_hints": {"properties": {"n": {"minimum": 2, "maximum": 3}}, "required": ["n"]},
    "empty_object": {"type": "object"},
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("seed", range(8))
def test_instances_are_valid(name: str, seed: int) -> None:
    schema = CASES[name]
    value = instance_for(schema, rng_for(name, seed))
    check(value, schema)
    json.dumps(value, allow_nan=False)


def test_get_weather_includes_every_property() -> None:
    value = instance_for(GET_WEATHER, rng_for("w"))
    assert isinstance(value, dict)
    assert set(value) == set(GET_WEATHER["properties"])
    assert 1 <= value["days"] <= 10 and value["unit"] in ("celsius", "fahrenheit")
    assert value["location"] and all(isinstance(f, str) for f in value["fields"])


def test_optional_properties_are_included() -> None:
    value = instance_for(CASES["optional_props"], rng_for("o"))
    assert isinstance(value, dict) and set(value) == {"a", "b"}


def test_default_wins_and_const_at_any_level() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "default": 3},
            "k": {"const": "fixed"},
            "d": {"type": "string", "default": "dflt", "pattern": "^zzz$"},
        },
    }
    assert instance_for(schema, rng_for("d")) == {"n": 3, "k": "fixed", "d": "dflt"}


def test_gemini_uppercase_types_and_string_integers() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING"},
            "count": {"type": "INTEGER", "minimum": 2, "maximum": 4},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "2"},
            "kind": {"type": "STRING", "format": "enum", "enum": ["a", "b"]},
            "ok": {"type": "BOOLEAN", "nullable": True},
        },
        "required": ["city"],
    }
    value = instance_for(schema, rng_for("g"))
    assert isinstance(value, dict) and set(value) == {"city", "count", "tags", "kind", "ok"}
    assert isinstance(value["city"], str) and 2 <= value["count"] <= 4
    assert len(value["tags"]) >= 2 and value["kind"] in ("a", "b")
    assert isinstance(value["ok"], bool)


def test_recursion_stops() -> None:
    value = instance_for(CASES["recursive"], rng_for("r"))

    def depth(node: Any) -> int:
        return 1 + max((depth(c) for c in node.get("children", ())), default=0)

    assert 1 <= depth(value) <= 8


def test_required_self_recursion_raises() -> None:
    schema: dict[str, Any] = {
        "$defs": {"n": {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}}},
        "$ref": "#/$defs/n",
    }
    schema["$defs"]["n"]["required"] = ["n"]
    with pytest.raises(ValueError):
        instance_for(schema, rng_for("x"))


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer", "minimum": 5, "maximum": 4},
        {"type": "array", "minItems": 3, "maxItems": 1},
        {"$ref": "https://example.com/s.json"},
        {"$ref": "#/$defs/missing"},
        {"type": "frobnicate"},
    ],
)
def test_unsatisfiable_or_unsupported_raises(schema: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        instance_for(schema, rng_for("u"))


def test_unmatched_pattern_falls_back_to_a_short_string() -> None:
    value = instance_for({"type": "string", "pattern": "^[q]{7}$"}, rng_for("p"))
    assert isinstance(value, str) and 0 < len(value) < 20


def test_deterministic_for_a_seed_and_varies_across_seeds() -> None:
    same = {json.dumps(instance_for(GET_WEATHER, rng_for("fp", 0))) for _ in range(5)}
    assert len(same) == 1
    varied = {json.dumps(instance_for(GET_WEATHER, rng_for("fp", i))) for i in range(10)}
    assert len(varied) > 1


def test_schema_is_not_mutated() -> None:
    before = json.dumps(CASES, sort_keys=True)
    for name, schema in CASES.items():
        instance_for(schema, rng_for(name))
    assert json.dumps(CASES, sort_keys=True) == before


def test_any_of_and_one_of_side_by_side_both_apply() -> None:
    schema = {
        "anyOf": [{"type": "string"}, {"type": "integer"}],
        "oneOf": [{"type": "string", "minLength": 4}, {"type": "boolean"}],
        "allOf": [True, {"maxLength": 9}],
    }
    value = instance_for(schema, rng_for("ab"))
    check(value, schema)
