"""The running outputs as one: every frame fanned out, a failing output dropped, all closed at the end.

The daemon holds one :class:`Outputs` and never handles a single output: an
output that raises while updating or following a camera reopen is logged in
one line, closed and left out, and the frame loop and the other outputs go on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from edge.frame.results import FrameResult
from edge.outputs.base import Output, OutputError

LOG = logging.getLogger("edge.outputs")


class Outputs:
    """Started outputs (see :func:`edge.outputs.registry.build_outputs`) with one life cycle."""

    def __init__(self, outputs: Iterable[Output] = (), log: logging.Logger = LOG):
        self._outputs = list(outputs)
        self.log = log

    def __iter__(self) -> Iterator[Output]:
        return iter(list(self._outputs))

    def __len__(self) -> int:
        return len(self._outputs)

    def update(self, frame: np.ndarray, result: FrameResult) -> None:
        """Hand one processed frame to every output; one that fails is dropped."""
        for output in list(self._outputs):
            try:
                output.update(frame, result)
            except OutputError as exc:
                self.log.error("%s; continuing without it", exc)
                self.drop(output)
            except Exception as exc:  # an output bug must not take the camera loop down
                self.log.exception("output %s failed (%s); continuing without it", output.name, exc)
                self.drop(output)

    def describe(self, running: Mapping[str, str]) -> None:
        """Tell every output what the service runs (the live view shows it); a failure here only loses the line."""
        for output in list(self._outputs):
            try:
                output.describe(running)
            except Exception as exc:  # noqa: BLE001 - cosmetic: the frames and the output go on
                self.log.error("%s: could not show what is running (%s)", output.name, exc)

    def camera_reopened(self, camera: object) -> None:
        """After a reopen, outputs that draw through the camera (the display overlay) move to the new one."""
        for output in list(self._outputs):
            try:
                output.camera_reopened(camera)
            except OutputError as exc:
                self.log.error("%s; continuing without it", exc)
                self.drop(output)

    def drop(self, output: Output) -> None:
        """Take a failed output out of the loop; its close() failing too must not stop the frames."""
        if output in self._outputs:
            self._outputs.remove(output)
        try:
            output.close()
        except Exception as exc:  # noqa: BLE001 - already failing; the frame loop and the others go on
            self.log.error("closing %s after its failure: %s", output.name, exc)

    def close(self) -> None:
        """Every output off (LEDs dark, sockets closed); one failing to close does not keep the rest on."""
        for output in self._outputs:
            try:
                output.close()
            except Exception as exc:  # keep closing the rest
                self.log.error("closing %s: %s", output.name, exc)
