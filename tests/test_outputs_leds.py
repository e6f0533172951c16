"""LED output on gpiozero's own mock pins, driven by real pipeline results on the committed photos.

Expected pin values are derived from the FrameResult the pipeline actually
produced (the shipped models decide the labels), following the documented
rule: RGB = colour of the emotion x band / bands, band = ceil(confidence x bands).
"""

from __future__ import annotations

import dataclasses
import logging
import math

import pytest

gpiozero = pytest.importorskip("gpiozero")
from gpiozero.pins.mock import MockFactory, MockPWMPin  # noqa: E402

from edge.frame.labels import EMOTION_LABELS, GENDER_LABELS  # noqa: E402
from edge.frame.results import Face, FrameResult  # noqa: E402
from edge.outputs.base import OutputError  # noqa: E402
from edge.outputs.leds import (  # noqa: E402
    BAND_MARGIN,
    LedOutput,
    LedSettings,  # noqa: E402
    confidence_band,
)
from edge.outputs.registry import OutputsSettings, build_outputs  # noqa: E402
from tests.conftest import Clock, run_photo  # noqa: E402

RGB = LedSettings().rgb_pins
WOMAN, MAN = LedSettings().gender_pins["woman"], LedSettings().gender_pins["man"]


@pytest.fixture(scope="module")
def pipeline(pipeline_factory):
    return pipeline_factory()


@pytest.fixture(scope="module")
def astronaut(pipeline, samples):
    image, result = run_photo(pipeline, samples / "astronaut.jpg")
    assert result.largest is not None, "the astronaut photo must give a face"
    return image, result


@pytest.fixture(scope="module")
def no_face(pipeline, samples):
    image, result = run_photo(pipeline, samples / "chelsea.jpg", frames=1)
    assert result.faces == [], "chelsea.jpg is the committed photo without a face"
    return image, result


@pytest.fixture
def factory():
    factory = MockFactory(pin_class=MockPWMPin)
    yield factory
    factory.close()


def started(factory, settings: LedSettings | None = None, clock: Clock | None = None) -> LedOutput:
    output = LedOutput(settings or LedSettings(), pin_factory=factory, clock=clock or Clock(100.0))
    output.start()
    return output


def expected_rgb(face: Face, settings: LedSettings) -> tuple[float, float, float]:
    band = min(settings.bands, max(1, math.ceil(face.emotion_confidence * settings.bands)))
    colour = settings.colour_map()[face.emotion]
    return tuple(c * band / settings.bands for c in colour)


def rgb_state(factory) -> tuple[float, float, float]:
    return tuple(factory.pin(p).state for p in RGB)


def history(factory, pins) -> dict[int, int]:
    """How many state changes each pin has recorded so far."""
    return {p: len(factory.pin(p).states) for p in pins}


def with_emotion(face: Face, emotion: str, confidence: float | None = None) -> Face:
    """The same face (box, track, gender) labelled ``emotion`` at ``confidence`` (default: the face's own)."""
    confidence = face.emotion_confidence if confidence is None else confidence
    rest = (1.0 - confidence) / (len(EMOTION_LABELS) - 1)
    scores = {label: (confidence if label == emotion else rest) for label in EMOTION_LABELS}
    return dataclasses.replace(face, emotion=emotion, emotion_scores=scores)


def frame_with(result: FrameResult, *faces: Face) -> FrameResult:
    return dataclasses.replace(result, faces=list(faces))


def test_rgb_led_shows_the_emotion_colour_at_the_confidence_band_and_the_gender_led(factory, astronaut):
    image, result = astronaut
    face = result.largest
    settings = LedSettings()
    output = started(factory, settings)
    assert rgb_state(factory) == (0, 0, 0)
    output.update(image, result)
    assert rgb_state(factory) == pytest.approx(expected_rgb(face, settings))
    assert any(rgb_state(factory)), "a face with a label must light the RGB LED"
    assert factory.pin(MAN).state == (face.gender == "man")
    assert factory.pin(WOMAN).state == (face.gender == "woman")
    output.close()


def test_a_stable_label_writes_no_pin(factory, astronaut, pipeline, samples):
    image, result = astronaut
    output = started(factory)
    output.update(image, result)
    before = history(factory, [*RGB, WOMAN, MAN])
    for _ in range(100):  # the same smoothed result, frame after frame
        output.update(image, result)
    # and fresh frames of the same scene through the real pipeline (tracking + smoothing continue)
    shown = (result.largest.emotion, result.largest.gender)
    for i in range(3, 9):
        fresh = pipeline.process(image, now=i / 15)
        assert (fresh.largest.emotion, fresh.largest.gender) == shown, "precondition: the smoothed label is stable"
        output.update(image, fresh)
    assert history(factory, [*RGB, WOMAN, MAN]) == before
    assert output.writes == 1
    output.close()


def test_an_emotion_change_rewrites_the_rgb_led_but_not_the_gender_leds(factory, astronaut):
    image, result = astronaut
    face = result.largest
    settings = LedSettings()
    colours = settings.colour_map()
    other = next(e for e in EMOTION_LABELS if colours[e] != colours[face.emotion])
    changed = with_emotion(face, other)
    output = started(factory, settings)
    output.update(image, result)
    genders = history(factory, [WOMAN, MAN])
    output.update(image, frame_with(result, changed))
    assert rgb_state(factory) == pytest.approx(expected_rgb(changed, settings))
    assert rgb_state(factory) != pytest.approx(expected_rgb(face, settings))
    assert history(factory, [WOMAN, MAN]) == genders
    output.update(image, result)  # and back
    assert rgb_state(factory) == pytest.approx(expected_rgb(face, settings))
    assert output.writes == 3
    output.close()


def test_a_gender_change_switches_the_gender_leds_only(factory, astronaut):
    image, result = astronaut
    face = result.largest
    other = next(g for g in GENDER_LABELS if g != face.gender)
    flipped = dataclasses.replace(face, gender=other, gender_scores={g: float(g == other) for g in GENDER_LABELS})
    output = started(factory)
    output.update(image, result)
    rgb = history(factory, RGB)
    output.update(image, frame_with(result, flipped))
    assert factory.pin(LedSettings().gender_pins[other]).state == 1
    assert factory.pin(LedSettings().gender_pins[face.gender]).state == 0
    assert history(factory, RGB) == rgb
    output.close()


def test_another_photo_toggles_pins_exactly_when_its_shown_state_differs(factory, astronaut, pipeline, samples):
    image, result = astronaut
    other_image, other = run_photo(pipeline, samples / "two_people.jpg")
    settings = LedSettings()
    output = started(factory, settings)
    output.update(image, result)
    first, before = output.state, history(factory, [*RGB, WOMAN, MAN])
    output.update(other_image, other)
    assert rgb_state(factory) == pytest.approx(expected_rgb(other.largest, settings))
    assert factory.pin(MAN).state == (other.largest.gender == "man")
    changed = history(factory, [*RGB, WOMAN, MAN]) != before
    assert changed == (output.state != first)
    output.close()


def test_brightness_follows_the_confidence_band_with_a_margin_at_the_edges(factory, astronaut):
    image, result = astronaut
    face = result.largest
    settings = LedSettings(bands=4)
    colour = settings.colour_map()[face.emotion]
    output = started(factory, settings)
    output.update(image, frame_with(result, with_emotion(face, face.emotion, 0.95)))
    assert rgb_state(factory) == pytest.approx(colour)  # band 4 of 4: full colour
    output.update(image, frame_with(result, with_emotion(face, face.emotion, 0.45)))
    assert rgb_state(factory) == pytest.approx(tuple(c * 2 / 4 for c in colour))  # band 2
    settled = history(factory, RGB)
    for confidence in (0.51, 0.49, 0.5 + BAND_MARGIN / 2, 0.26 - BAND_MARGIN / 2):  # noise around band 2's edges
        output.update(image, frame_with(result, with_emotion(face, face.emotion, confidence)))
    assert history(factory, RGB) == settled
    output.update(image, frame_with(result, with_emotion(face, face.emotion, 0.6)))  # clearly band 3
    assert rgb_state(factory) == pytest.approx(tuple(c * 3 / 4 for c in colour))
    output.close()


def test_confidence_band_rule():
    assert [confidence_band(c, 4) for c in (0.0, 0.1, 0.25, 0.26, 0.5, 0.74, 1.0)] == [1, 1, 1, 2, 2, 3, 4]
    assert confidence_band(0.51, 4, current=2) == 2
    assert confidence_band(0.5 + 2 * BAND_MARGIN, 4, current=2) == 3


def test_leds_hold_through_a_short_gap_and_go_off_after_off_after_s(factory, astronaut, no_face):
    image, result = astronaut
    empty_image, empty = no_face
    clock = Clock(100.0)
    output = started(factory, LedSettings(off_after_s=2.0), clock)
    output.update(image, result)
    lit = rgb_state(factory)
    before = history(factory, [*RGB, WOMAN, MAN])
    clock.t += 1.9
    output.update(empty_image, empty)
    assert rgb_state(factory) == lit
    assert history(factory, [*RGB, WOMAN, MAN]) == before
    clock.t += 0.2
    output.update(empty_image, empty)
    assert rgb_state(factory) == (0, 0, 0)
    assert factory.pin(WOMAN).state == 0 and factory.pin(MAN).state == 0
    off = history(factory, [*RGB, WOMAN, MAN])
    clock.t += 60
    output.update(empty_image, empty)
    assert history(factory, [*RGB, WOMAN, MAN]) == off
    output.update(image, result)  # a face again: back on
    assert rgb_state(factory) == lit
    output.close()


def test_no_face_from_the_start_keeps_everything_dark(factory, no_face):
    image, empty = no_face
    output = started(factory)
    output.update(image, empty)
    assert rgb_state(factory) == (0, 0, 0)
    assert output.writes == 0
    output.close()


def test_close_turns_everything_off_and_releases_the_pins(factory, astronaut):
    image, result = astronaut
    output = started(factory)
    output.update(image, result)
    assert any(rgb_state(factory))
    output.close()
    assert rgb_state(factory) == (0, 0, 0)
    assert factory.pin(WOMAN).state == 0 and factory.pin(MAN).state == 0
    for pin in (*RGB, WOMAN, MAN):  # released: gpiozero lets another device claim them
        gpiozero.LED(pin, pin_factory=factory).close()
    output.close()  # twice is fine
    output.update(image, result)  # and updating a closed output writes nothing
    assert rgb_state(factory) == (0, 0, 0)


def test_board_layout_lights_one_led_per_emotion(factory, astronaut):
    image, result = astronaut
    face = result.largest
    settings = LedSettings(layout="board")
    pins = settings.emotion_pins
    output = started(factory, settings)
    output.update(image, result)
    band = min(4, max(1, math.ceil(face.emotion_confidence * 4)))
    assert factory.pin(pins[face.emotion]).state == pytest.approx(band / 4)
    assert all(factory.pin(pin).state == 0 for emotion, pin in pins.items() if emotion != face.emotion)
    other = next(e for e in EMOTION_LABELS if e != face.emotion)
    untouched = history(factory, [p for e, p in pins.items() if e not in (face.emotion, other)])
    output.update(image, frame_with(result, with_emotion(face, other)))
    assert factory.pin(pins[other]).state == pytest.approx(band / 4)
    assert factory.pin(pins[face.emotion]).state == 0
    assert history(factory, [p for e, p in pins.items() if e not in (face.emotion, other)]) == untouched
    output.close()
    assert all(factory.pin(pin).state == 0 for pin in pins.values())


def test_custom_colour_and_common_anode_wiring(factory, astronaut):
    image, result = astronaut
    face = result.largest
    settings = LedSettings(colors={face.emotion: "#00ff00"}, active_high=False)
    output = started(factory, settings)
    output.update(image, result)
    band = min(4, max(1, math.ceil(face.emotion_confidence * 4)))
    # active low: the pin is driven to 1 - value
    assert rgb_state(factory) == pytest.approx((1.0, 1.0 - band / 4, 1.0))
    output.close()
    for pin in RGB:  # switched off (driven high on a common-anode LED), then released (an input: no current)
        assert factory.pin(pin).states[-2].state == 1.0
        assert factory.pin(pin).function == "input"


def test_a_pin_already_in_use_gives_one_clear_message_and_leaks_nothing(factory):
    busy = gpiozero.LED(RGB[1], pin_factory=factory)
    output = LedOutput(LedSettings(), pin_factory=factory)
    with pytest.raises(OutputError) as error:
        output.start()
    assert str(error.value) == (f"LEDs: pin {RGB[1]} (rgb_pins[1]) is already in use "
                                "(by another output, device or program)")
    busy.close()
    for pin in (RGB[0], RGB[2], WOMAN, MAN):  # nothing half-claimed is left behind
        gpiozero.LED(pin, pin_factory=factory).close()


def test_a_gender_pin_in_use_names_its_key(factory):
    busy = gpiozero.LED(MAN, pin_factory=factory)
    with pytest.raises(OutputError, match=rf"^LEDs: pin {MAN} \(gender_pins.man\) is already in use"):
        LedOutput(LedSettings(), pin_factory=factory).start()
    busy.close()
    gpiozero.RGBLED(*RGB, pin_factory=factory).close()  # the RGB LED claimed before it was released


@pytest.mark.parametrize(("settings", "message"), [
    (LedSettings(rgb_pins=(17, 99, 22)), "LEDs: pin 99 (rgb_pins[1]) is not a valid GPIO pin on this board"),
    (LedSettings(gender_pins={"woman": 5, "man": 64}), "LEDs: pin 64 (gender_pins.man) is not a valid GPIO pin"),
    (LedSettings(layout="board", emotion_pins={"happy": 77}), "LEDs: pin 77 (emotion_pins.happy) is not a valid"),
])
def test_an_invalid_pin_gives_one_clear_message(factory, settings, message):
    with pytest.raises(OutputError) as error:
        LedOutput(settings, pin_factory=factory).start()
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_a_factory_without_pwm_is_reported():
    factory = MockFactory()  # plain MockPin: no PWM
    with pytest.raises(OutputError, match=r"^LEDs: pin 17 \(rgb_pins\[0\]\) cannot do PWM"):
        LedOutput(LedSettings(), pin_factory=factory).start()
    factory.close()


def test_build_outputs_uses_gpiozero_pin_factory_and_drops_leds_that_cannot_start(monkeypatch, caplog, astronaut):
    """The gpiozero way: GPIOZERO_PIN_FACTORY picks the factory; a failing output is one log line, not a crash."""
    image, result = astronaut
    monkeypatch.setattr(gpiozero.Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setenv("GPIOZERO_MOCK_PIN_CLASS", "mockpwmpin")
    settings = OutputsSettings(event_log=dataclasses.replace(OutputsSettings().event_log, enabled=False))
    outputs = build_outputs(settings, log=logging.getLogger("test.outputs"))
    assert [o.name for o in outputs] == ["LEDs"]
    outputs[0].update(image, result)
    pins = gpiozero.Device.pin_factory
    assert tuple(pins.pin(p).state for p in RGB) == pytest.approx(expected_rgb(result.largest, LedSettings()))
    outputs[0].close()
    # the same pins, taken by someone else: the LEDs are left out with one error line, nothing raised
    busy = gpiozero.LED(RGB[0])
    with caplog.at_level(logging.ERROR, logger="test.outputs"):
        outputs = build_outputs(settings, log=logging.getLogger("test.outputs"))
    assert outputs == []
    assert [r.getMessage() for r in caplog.records] == [
        f"LEDs: pin {RGB[0]} (rgb_pins[0]) is already in use (by another output, device or program); "
        "continuing without it"]
    busy.close()
    pins.close()
