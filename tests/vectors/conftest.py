import pytest

from qdaed.vectors.export import export

# One or a few cases of every op: small enough for the default run (a few seconds).
SUBSET = ["linear", "lstm_1layer_B1_T1", "lstm_2layer_B2_T6", "temporal_pool_*", "loss_hard*",
          "loss_soft_T2*", "loss_distillation_T2_lam0.9", "loss_distillation_T8_lam0.5_logits_1e4",
          "quant_k1_*", "quant_k4_*", "quant_k16_*", "quant_sym_k2_*", "quant_sym_k4_*",
          "quant_k2_row_nearest_ties", "conv2d_*", "batchnorm2d_*", "relu*", "maxpool2d_*",
          "global_avg_pool", "lfbe_tone", "lfbe_silence", "lfbe_noise_int16", "lfbe_one_frame",
          "mel_filterbank_htk_64", "student_lstm_1layer_last", "resnet18_w4_train",
          "adam_*", "qd_step_*", "detector_*"]


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """A float32 export of SUBSET (read-only for the tests: copy before changing it)."""
    d = tmp_path_factory.mktemp("vectors") / "v"
    export(str(d), dtype="float32", seed=0, patterns=SUBSET)
    return str(d)
