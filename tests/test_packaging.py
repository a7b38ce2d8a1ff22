"""Packaging: the py.typed claim (every public function of the API has type hints)."""

# ------------------------------------------------------------------------ py.typed
PUBLIC_API = {
    "qdaed.detector": ["Detector"],
    "qdaed.features.lfbe": ["LfbeOptions", "make_options", "num_frames", "lfbe",
                            "window_function", "hz_to_mel", "mel_to_hz", "mel_filterbank"],
    "qdaed.metrics": ["roc_curve", "roc_auc", "equal_error_rate", "threshold_at_eer",
                      "average_precision", "compute_metrics"],
    "qdaed.io.modelfile": ["ModelFile", "accounted_bytes", "layout_digest", "save_model",
                           "read_header", "load_model", "save_checkpoint", "load_checkpoint"],
    "qdaed.data.manifest": ["manifests_dir", "shipped_manifests", "shipped_manifest",
                            "resolve_manifest"],
}


def _unannotated(fn):
    import inspect

    fn = getattr(fn, "__wrapped__", fn)          # functools.lru_cache
    sig = inspect.signature(fn)
    missing = [p.name for p in sig.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_py_typed_claim_holds_for_the_public_api():
    """The package ships py.typed: every public function and method named here has a type
    hint on each parameter and on its return value."""
    import importlib
    import inspect

    gaps = {}
    for module, names in PUBLIC_API.items():
        mod = importlib.import_module(module)
        for name in names:
            obj = getattr(mod, name)
            if inspect.isclass(obj):
                members = [(f"{name}.{k}", v) for k, v in vars(obj).items()
                           if not k.startswith("_") and callable(getattr(v, "__func__", v))]
                if "__annotations__" not in vars(obj):
                    gaps[name] = ["fields"]
            else:
                members = [(name, obj)]
            for label, fn in members:
                missing = _unannotated(getattr(fn, "__func__", fn))
                if missing:
                    gaps[label] = missing
    assert not gaps, gaps
