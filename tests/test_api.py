"""The public API: every name in ``__all__`` exists, is documented, and documents every parameter."""

import inspect
import re

import pytest

import ngdformer

LECTURE_FIRST = ("sample_tasks", "embed", "ngd_step", "ngd", "max_margin", "ngd_weights", "attention_forward",
                 "attention_backward", "looped_forward", "train_one_step_layer")


def _public_callables():
    for name in ngdformer.__all__:
        obj = getattr(ngdformer, name)
        if inspect.isfunction(obj):
            yield name, obj


def test_all_lists_every_public_name_once_and_they_import():
    assert len(ngdformer.__all__) == len(set(ngdformer.__all__))
    for name in ngdformer.__all__:
        assert hasattr(ngdformer, name), name
    exported = {n for n in dir(ngdformer) if not n.startswith("_")}
    modules = {n for n in exported if inspect.ismodule(getattr(ngdformer, n))}
    assert exported - modules - {"annotations"} <= set(ngdformer.__all__) | {"fast"}


@pytest.mark.parametrize("name, func", list(_public_callables()))
def test_every_parameter_is_documented(name, func):
    doc = inspect.getdoc(func) or ""
    params = [p for p in inspect.signature(func).parameters.values() if p.kind not in (p.VAR_POSITIONAL,)]
    assert doc.split("\n")[0].strip(), f"{name}: no one-line summary"
    assert "Returns" in doc, f"{name}: no Returns section"
    if not params:
        return
    assert "Parameters" in doc, f"{name}: no Parameters section"
    section = doc.split("Parameters", 1)[1].split("Returns", 1)[0]
    for p in params:
        pname = "**" + p.name if p.kind == p.VAR_KEYWORD else p.name
        assert re.search(rf"(^|[\s,]){re.escape(pname)}\b", section, re.M), f"{name}: parameter {pname!r} undocumented"


@pytest.mark.parametrize("name", LECTURE_FIRST)
def test_lecture_first_functions_have_examples(name):
    assert ">>>" in (inspect.getdoc(getattr(ngdformer, name)) or ""), f"{name}: no Examples section"


def test_named_tuples_document_their_fields():
    for name in ("AttentionCache", "MaxMarginResult", "SavedWeights", "Shift", "AdamState", "SGDState"):
        cls = getattr(ngdformer, name)
        source = inspect.getsource(cls)
        for field in cls._fields:
            line = next(ln for ln in source.splitlines() if re.match(rf"\s+{field}\s*:", ln))
            assert "#" in line, f"{name}.{field}: no comment giving its meaning and shape"


def test_fast_twins_have_the_textbook_signatures():
    for name in ("attention_forward", "attention_backward", "looped_forward", "looped_forward_with_cache",
                 "looped_backward"):
        fast, text = getattr(ngdformer.fast, name), getattr(ngdformer, name)
        fast_params = list(inspect.signature(fast).parameters)
        text_params = list(inspect.signature(text).parameters)
        assert fast_params[:len(text_params) - ("kwargs" in text_params)] == [p for p in text_params if p != "kwargs"]


def test_textbook_files_do_not_import_fast():
    for module in ("attention", "construction", "losses", "solvers", "tasks"):
        source = inspect.getsource(getattr(ngdformer, module))
        assert "fast" not in re.findall(r"^from \.(\w+) import", source, re.M), module


def test_the_textbook_layer_fits_on_a_slide():
    """attention_forward / attention_backward: at most about 20 code lines each, lines of at most 88 characters."""
    for func in (ngdformer.attention_forward, ngdformer.attention_backward, ngdformer.softmax,
                 ngdformer.softmax_backward):
        source = inspect.getsource(func)
        assert max(len(line) for line in source.splitlines()) <= 88, func.__name__
        body = source.split('"""', 2)[2]  # after the docstring
        code = [ln for ln in body.splitlines()[1:] if ln.strip() and not ln.strip().startswith("#")]
        assert len(code) <= 20, (func.__name__, len(code))
        assert "ngdformer.fast" not in body and "_" + "batch_sum" not in body
