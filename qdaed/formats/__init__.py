"""What a trained model is outside the process: the model file's document (:mod:`.header`,
its schema and checks), the size a device stores (:mod:`.sizes`), and interchange with PyTorch
(:mod:`.interchange`), ONNX (:mod:`.onnx_export`) and TensorFlow Lite Micro
(:mod:`.tflite_export`). Above :mod:`qdaed.models`, :mod:`qdaed.features` and
:mod:`qdaed.integer`; the container these documents travel in is :mod:`qdaed.io.modelfile`."""
