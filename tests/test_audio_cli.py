"""``advx audio attack``: printed rates, WAVs, summary.json and the HTML report."""

from __future__ import annotations

import json

from advx.audio.wav import read_wav
from advx.cli import main


def test_audio_attack_writes_wavs_summary_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["audio", "attack", "--model", "digits-kws", "--attack", "pgd", "--threat", "db:-30", "--n", "3",
                 "--steps", "10", "--playback-draws", "2", "--examples", "1", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "synthetic speech" in text and "untargeted: success" in text and "targeted: success" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["synthetic"] is True and summary["threat_db"] == -30
    modes = {r["mode"]: r for r in summary["results"]}
    assert set(modes) == {"untargeted", "targeted"}
    for row in modes.values():
        assert 0 <= row["success_rate"] <= 1 and 0 <= row["success_after_playback"] <= 1
        assert row["success_16bit_wav"] == row["success_rate"]  # at -30 dB quantisation to 16 bits changes nothing
        if row["success_rate"] > 0:
            assert row["mean_db_x"] <= -30 + 1e-6 and row["mean_snr_db"] > 0
    wavs = sorted((out / "wav").glob("*.wav"))
    assert len(wavs) == 9  # clean + untargeted + targeted for 3 clips
    clean = [w for w in wavs if "_clean_" in w.name][0]
    adv = [w for w in wavs if w.name.startswith(clean.name[:3]) and "_targeted_" in w.name][0]
    (a, rate), (b, _) = read_wav(clean), read_wav(adv)
    assert rate == 16000 and a.shape == (16000,)
    peak = float(a.abs().max())  # the 16-bit file keeps the perturbation inside the bound (+ quantisation)
    assert float((b - a).abs().max()) <= peak * 10 ** (-30 / 20) + 2 / 32768
    html = (out / "report.html").read_text()
    assert html.count("<audio") == 6 and "data:audio/wav;base64," in html and "data:image/png;base64," in html
    assert "SYNTHETIC SPEECH" in html


def test_audio_attack_cw_and_bad_threat(tmp_path, capsys):
    code = main(["audio", "attack", "--attack", "cw", "--threat", "db:-20", "--n", "2", "--steps", "5", "--mode",
                 "targeted", "--playback-draws", "0", "--examples", "0", "--out", str(tmp_path / "cw")])
    assert code == 0
    summary = json.loads((tmp_path / "cw" / "summary.json").read_text())
    assert [r["mode"] for r in summary["results"]] == ["targeted"] and "CarliniWagnerDB" in summary["attack"]
    capsys.readouterr()
    assert main(["audio", "attack", "--threat", "linf:0.1", "--n", "1", "--out", str(tmp_path / "x")]) == 2
    assert "db:-30" in capsys.readouterr().err
