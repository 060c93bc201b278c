"""A TFLite model on Google's LiteRT runtime (``ai_edge_litert``): loaded once, invoked with numpy arrays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from f2p.errors import ModelFileError


class LiteRtModel:
    """One ``.tflite`` model with a single float32 image input (1, H, W, C), its interpreter allocated once.

    Args:
        path: the ``.tflite`` file.
        output_sizes: number of values of each output, in order: a model with other outputs is refused.
        num_threads: CPU threads of the interpreter.

    Raises:
        ModelFileError: the file is not a model LiteRT can run (corrupt, truncated, custom ops), its input is not a
            float32 (1, H, W, C) image, or its outputs differ from ``output_sizes`` (another model).
    """

    def __init__(self, path: str | os.PathLike, output_sizes: tuple[int, ...], num_threads: int = 1) -> None:
        self.path = Path(path)
        try:
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            reason = " ".join(str(error).split())  # LiteRT's messages span lines
            raise ModelFileError(self.path, f"LiteRT cannot load this .tflite model ({reason})") from None
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1 or len(inputs[0]["shape"]) != 4 or inputs[0]["dtype"] != np.float32:
            raise ModelFileError(self.path, f"expected one float32 (1, H, W, C) input, got "
                                            f"{[(d['shape'].tolist(), d['dtype'].__name__) for d in inputs]}")
        outputs = self._interpreter.get_output_details()
        sizes = tuple(int(np.prod(detail["shape"])) for detail in outputs)
        if sizes != output_sizes:
            raise ModelFileError(self.path, f"not the expected model: its outputs have {sizes} values, expected "
                                            f"{output_sizes}")
        self._input = inputs[0]["index"]
        self._outputs = [detail["index"] for detail in outputs]
        _, self.height, self.width, self.channels = (int(n) for n in inputs[0]["shape"])

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) of the model's input image."""
        return self.height, self.width

    def invoke(self, image: np.ndarray) -> list[np.ndarray]:
        """Run the model.

        Args:
            image: (1, H, W, C) float32 input, already in the model's value range.

        Returns:
            The output tensors in the model's output order, as copies.
        """
        expected = (1, self.height, self.width, self.channels)
        if image.shape != expected or image.dtype != np.float32:
            raise ValueError(f"{self.path.name}: input must be float32 {expected}, got {image.dtype} {image.shape}")
        self._interpreter.set_tensor(self._input, image)
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(index).copy() for index in self._outputs]
