"""The tiny pipeline configuration of the pipeline, report and stage tests."""

from qdaed.pipeline.presets import preset_config


def tiny_config():
    return preset_config("tiny").merged({"quant": {"bits": [4]}})
