"""Data: audio reading (``audio``), manifests (``manifest``), AudioSet subset manifests
(``audioset``), and the embedded synthetic corpus (``synth``)."""
