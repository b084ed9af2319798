"""flows.precision.choose_fast_path: what ``auto`` resolves to, and the refusals."""

from __future__ import annotations

import pytest
import torch

from flows import precision
from flows.precision import FastPath, choose_fast_path

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_auto_on_a_cpu_is_channels_last_with_bf16_only_where_native(
        native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "bf16_supported", lambda device: native)
    assert choose_fast_path(CPU, "auto", "auto", "auto") == FastPath(native, True, False)


def test_each_switch_turns_off_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "bf16_supported", lambda device: True)
    assert choose_fast_path(CPU, "none", "auto", "auto") == FastPath(False, True, False)
    assert choose_fast_path(CPU, "auto", "off", "auto") == FastPath(True, False, False)
    assert choose_fast_path(CPU, "auto", "auto", "on") == FastPath(True, True, True)
    assert choose_fast_path(CPU, "auto", "auto", "auto", fast=False) == FastPath(False, False,
                                                                                False)


def test_bf16_is_refused_where_it_is_not_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "bf16_supported", lambda device: False)
    with pytest.raises(ValueError, match="not supported natively"):
        choose_fast_path(CPU, "bf16", "auto", "auto")
