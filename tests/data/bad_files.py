"""Writers of good and bad audio files, shared by the audio and feature-store tests."""

import numpy as np
import soundfile as sf


def tone(seconds=0.5, rate=16000, freq=440.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


def write_bad_files(root):
    """{name: (relative path, substring the reason must contain)} of one file per bad case."""
    root.mkdir(parents=True, exist_ok=True)
    cases = {}
    cases["missing"] = ("missing.wav", "missing")
    (root / "empty.wav").write_bytes(b"")
    cases["empty"] = ("empty.wav", "empty")
    sf.write(root / "full.wav", tone(1.0), 16000, subtype="PCM_16")
    data = (root / "full.wav").read_bytes()
    (root / "truncated.wav").write_bytes(data[: len(data) // 2])
    (root / "full.wav").unlink()
    cases["truncated"] = ("truncated.wav", "truncated")
    (root / "garbage.wav").write_bytes(b"this is not audio at all " * 20)
    cases["unreadable"] = ("garbage.wav", "unreadable")
    sf.write(root / "short.wav", tone(0.01), 16000, subtype="PCM_16")  # 160 samples < 400
    cases["too_short"] = ("short.wav", "too short")
    x = tone(0.5)
    x[100] = np.nan
    sf.write(root / "nan.wav", x, 16000, subtype="FLOAT")
    cases["non_finite"] = ("nan.wav", "non-finite")
    header_only = root / "noframes.wav"
    sf.write(header_only, np.zeros(0), 16000, subtype="PCM_16")
    cases["no_samples"] = ("noframes.wav", "empty")
    return cases


def write_good_files(root):
    """{name: relative path} of usable files with unusual rates, channels and formats."""
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, rate, ch, fmt, sub in [("mono16k", 16000, 1, "wav", "PCM_16"),
                                     ("cd_stereo", 44100, 2, "wav", "PCM_16"),
                                     ("phone8k", 8000, 1, "flac", "PCM_16"),
                                     ("odd_rate", 11025, 3, "wav", "FLOAT"),
                                     ("vorbis", 22050, 1, "ogg", "VORBIS")]:
        rel = f"{name}.{fmt}"
        sf.write(root / rel, tone(0.6, rate, channels=ch), rate, subtype=sub)
        files[name] = rel
    (root / "silent.wav").write_bytes(b"")
    sf.write(root / "silent.wav", np.zeros(8000), 16000, subtype="PCM_16")
    files["silent"] = "silent.wav"
    return files
