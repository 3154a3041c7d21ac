"""Which parameters vary, and how configs are described and told apart."""

from __future__ import annotations

from llenergymeasure.report import params as P


def test_flatten_nests_sections_and_keeps_lists_as_text() -> None:
    flat = P.flatten({"pytorch": {"batch_size": 4, "x": None}, "stop": ["a", "b"], "n": 1})
    assert flat == {"pytorch.batch_size": 4, "pytorch.x": None, "stop": '["a", "b"]', "n": 1}


def test_varied_parameters_ignore_the_name_and_count_a_missing_key_as_none() -> None:
    a = {"name": "a", "backend": "pytorch", "pytorch.batch_size": 1, "fp": "float16"}
    b = {"name": "b", "backend": "pytorch", "pytorch.batch_size": 8, "fp": "float16"}
    c = {"name": "c", "backend": "vllm", "fp": "float16"}
    assert P.varied_parameters([a, b]) == ["pytorch.batch_size"]
    assert P.varied_parameters([a, b, c]) == ["backend", "pytorch.batch_size"]
    assert P.varied_parameters([a]) == []
    assert P.axes(["backend", "model.name", "pytorch.batch_size"]) == ["pytorch.batch_size"]


def test_difference_names_what_changes_in_short_names() -> None:
    a = {"pytorch.batch_size": 1, "fp_precision": "float16"}
    b = {"pytorch.batch_size": 8, "fp_precision": "float16"}
    keys = ["pytorch.batch_size", "fp_precision"]
    assert P.difference(a, b, keys) == "batch_size 1 -> 8"
    assert P.difference(a, a, keys) == "same parameters"
    assert P.describe(a, keys) == "batch_size=1, fp_precision=float16"
    assert P.describe(a, []) == "(only config)"


def test_values_sort_numbers_numerically_then_text() -> None:
    assert P.sort_values([16, 2, "unset", 2.5, 1, "auto", 16]) == [1, 2, 2.5, 16, "auto", "unset"]
    assert P.sort_values(["16", "4", "1"]) == ["1", "4", "16"]
    assert P.show(None) == "unset" and P.show(True) == "true" and P.show(4.0) == "4"
