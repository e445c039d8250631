"""Checking pictures: a picture is decoded to be checked, a few at a time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from PIL import Image

from rolodex.service import pictures
from tests.api.test_pictures import encoded


def test_pictures_are_decoded_a_few_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # A small file may decode to what its pixel limit allows: 40 megapixels are 160 MB of
    # RGBA from 150 KB of PNG. Decoded in each request's thread, 32 such uploads at once
    # left the server at 1.8 GB.
    running = most = 0
    lock = threading.Lock()
    load = Image.Image.load

    def slow_load(self: Image.Image) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.05)
            return load(self)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(Image.Image, "load", slow_load)
    data = encoded("PNG", (8, 8))
    with ThreadPoolExecutor(max_workers=12) as pool:
        kinds = list(pool.map(lambda _: pictures.check_picture(data), range(12)))
    assert kinds == ["image/png"] * 12
    assert most == pictures.DECODERS
