"""Cameras, microphones and speakers in the web app, in real Chromium with two fake
cameras, three microphones and three speakers: picked on the join screen and in the
call, remembered, switched front to back on a phone, and the microphone's level."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.web_app import WAIT, join_app, page_errors, tile

pytestmark = pytest.mark.browser

FAKE_DEVICES = "--use-fake-device-for-media-stream=device-count=2"


@pytest.fixture
async def devices_browser() -> AsyncIterator[Browser]:
    args = [arg for arg in CHROMIUM_ARGS if arg != "--use-fake-device-for-media-stream"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*args, FAKE_DEVICES]
        )
        try:
            yield browser
        finally:
            await browser.close()


# Every stream the page opens, so that the test can see which device is live.
RECORD_CAPTURES = """
const capture = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
window.captured = [];
navigator.mediaDevices.getUserMedia = async (constraints) => {
  const stream = await capture(constraints);
  window.captured.push(stream);
  return stream;
};
"""

LIVE_DEVICE = """(kind) => {
  const live = new Set(window.captured.flatMap((stream) => stream.getTracks())
    .filter((track) => track.kind === kind && track.readyState === "live"));
  return live.size === 1 ? [...live][0].getSettings().deviceId : live.size;
}"""


async def options(page: Page, select: str) -> list[str]:
    return await page.eval_on_selector_all(
        f"{select} option", "(nodes) => nodes.map((node) => node.value)"
    )


async def live_device_is(page: Page, kind: str, device_id: str) -> None:
    await page.wait_for_function(f"({LIVE_DEVICE})({kind!r}) === {device_id!r}", timeout=WAIT)


async def test_devices_picked_on_the_join_screen_and_in_the_call_are_used_and_remembered(
    start_hub, devices_browser: Browser
) -> None:
    url = await start_hub()
    context = await devices_browser.new_context()
    await context.add_init_script(RECORD_CAPTURES)
    ada = await context.new_page()
    errors = page_errors(ada)
    await ada.goto(f"{url}/?room=kit")
    await ada.wait_for_function(
        "document.querySelectorAll('#join-camera option').length === 2", timeout=WAIT
    )
    cameras = await options(ada, "#join-camera")
    first_camera = await ada.input_value("#join-camera")
    await live_device_is(ada, "video", first_camera)
    second_camera = next(camera for camera in cameras if camera != first_camera)
    await ada.select_option("#join-camera", second_camera)
    await live_device_is(ada, "video", second_camera)
    speakers = await options(ada, "#join-speaker")
    assert len(speakers) == 3
    await ada.select_option("#join-speaker", speakers[2])

    # remembered: a reload opens the camera picked
    await ada.reload()
    await ada.wait_for_function(
        "document.getElementById('preview-video').videoWidth > 0", timeout=WAIT
    )
    await live_device_is(ada, "video", second_camera)
    assert await ada.input_value("#join-camera") == second_camera
    await ada.fill("#name-input", "ada")
    await ada.click("#join-button")
    await ada.wait_for_selector("#call-screen:not([hidden])", timeout=WAIT)
    await live_device_is(ada, "video", second_camera)

    bob = await devices_browser.new_page()
    await join_app(bob, url, "kit", "bob")
    # ada's sound plays on the speaker she picked
    await ada.wait_for_function(
        f"[...document.querySelectorAll('#audio-sinks audio')]"
        f".some((audio) => audio.sinkId === {speakers[2]!r})",
        timeout=WAIT,
    )
    # the microphone's level shows on its button (the fake microphone beeps)
    await ada.wait_for_function(
        "Number(document.getElementById('toggle-mic').style.getPropertyValue('--level')) > 0",
        timeout=WAIT,
    )

    # in the call: another microphone and camera, and bob still gets both
    await ada.click("#open-devices")
    await ada.wait_for_selector("#devices-dialog[open]")
    microphones = await options(ada, "#call-microphone")
    await ada.select_option("#call-microphone", microphones[2])
    await live_device_is(ada, "audio", microphones[2])
    await ada.select_option("#call-camera", first_camera)
    await live_device_is(ada, "video", first_camera)
    await ada.click("#close-devices")
    await ada.wait_for_selector("#devices-dialog[open]", state="detached")
    await bob.wait_for_selector(f"{tile('ada')}.speaking", timeout=WAIT)
    await bob.wait_for_function(
        f"document.querySelector('{tile('ada')} video').videoWidth > 0", timeout=WAIT
    )
    # and remembered for the next time
    saved = await ada.evaluate("JSON.parse(localStorage.getItem('hubbub.devices'))")
    assert saved == {"camera": first_camera, "microphone": microphones[2], "speaker": speakers[2]}
    assert errors == []
    await context.close()


async def test_a_phone_switches_between_its_front_and_back_cameras(
    start_hub, devices_browser: Browser
) -> None:
    url = await start_hub()
    phone = await devices_browser.new_context(
        viewport={"width": 390, "height": 780}, is_mobile=True, has_touch=True
    )
    await phone.add_init_script(RECORD_CAPTURES)
    ada = await phone.new_page()
    await ada.goto(f"{url}/?room=flip")
    await ada.wait_for_selector("#preview-flip:not([hidden])", timeout=WAIT)
    front = await ada.input_value("#join-camera")
    await live_device_is(ada, "video", front)
    back = next(camera for camera in await options(ada, "#join-camera") if camera != front)
    await ada.click("#preview-flip")
    await live_device_is(ada, "video", back)
    await ada.fill("#name-input", "ada")
    await ada.click("#join-button")
    await ada.wait_for_selector("#call-screen:not([hidden])", timeout=WAIT)
    bob = await devices_browser.new_page()
    await join_app(bob, url, "flip", "bob")
    await ada.wait_for_selector(f"{tile('ada')} .flip-tile:not([hidden])", timeout=WAIT)
    await ada.tap(tile("ada"))
    await ada.click(f"{tile('ada')} .flip-tile")
    await live_device_is(ada, "video", front)
    await bob.wait_for_function(
        f"document.querySelector('{tile('ada')} video').videoWidth > 0", timeout=WAIT
    )
    await phone.close()
