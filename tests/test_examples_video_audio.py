"""examples/video.py and examples/audio.py: clips and spectrograms train with CutMix over time, in miniature."""

import pytest
import torch
from integration_support import load_example

pytestmark = [pytest.mark.usefixtures("kept_global_state"), pytest.mark.slow]

pytest.importorskip("matplotlib")


def test_video_trains_every_run_and_draws_the_temporally_cut_clip(tmp_path):
    picture = tmp_path / "clip.png"
    results = load_example("video").main(["--samples", "32", "--epochs", "1", "--picture", str(picture)])
    assert set(results) == {"plain", "spatial", "temporal", "block"}
    assert all(0 <= r[0] <= 1 for r in results.values()) and picture.stat().st_size > 1000


def test_video_clips_move_their_square_in_their_labels_direction():
    video = load_example("video")
    clips = video.Motion(12, frames=6, size=24, seed=3)
    for i in range(len(clips)):
        clip, label = clips[i]
        centres = torch.stack([(clip[t].float().mean(0) > 140).nonzero().float().mean(0) for t in range(6)])
        steps = (centres[1:] - centres[:-1]).round().long()  # one per frame, but for a wrap at the border
        assert (steps == video.STEPS[label]).all(1).sum() >= 4, f"clip {i}: {steps.tolist()}"


def test_audio_trains_every_run_and_draws_the_spectrogram_cut_in_time(tmp_path):
    picture = tmp_path / "spectrogram.png"
    results = load_example("audio").main(["--samples", "16", "--epochs", "1", "--picture", str(picture)])
    assert set(results) == {"plain", "mixup", "time-cutmix"}
    assert all(0 <= r[0] <= 1 for r in results.values()) and picture.stat().st_size > 1000


def test_audio_tones_sit_in_their_band():
    audio = load_example("audio")
    sounds = audio.Sounds(24, seed=1)
    for i in range(len(sounds)):
        spec, kind = sounds[i]
        assert spec.shape == (1, 129, 63)
        peak_hz = int(spec[0].mean(1).argmax()) * audio.RATE / audio.N_FFT
        if kind == 0:
            assert 150 <= peak_hz <= 550, (i, peak_hz)
        elif kind == 1:
            assert 1450 <= peak_hz <= 3050, (i, peak_hz)
