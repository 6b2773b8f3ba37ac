"""Key/value caches preallocated for the tokens still to come, in place of ones that concatenate at every pass.

``expanded`` turns the shared prefix's batch-1 cache into one of a batch's rows whose layers keep their keys and
values in buffers with room for the batch's own tokens (and a generation budget): the prefix is copied once and
each pass writes its tokens' keys and values after it. ``preallocate`` does the same for a cache a pass
returned. Attention reads the filled part, so the model sees the tensors a concatenating cache would hold,
without copying the whole cache at every pass.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views of buffers with room for ``room`` more tokens."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int) -> None:
        super().__init__()
        rows, heads, length, width = keys.shape
        self._keys = keys.new_empty((rows, heads, length + room, width))
        self._values = values.new_empty((rows, heads, length + room, values.shape[-1]))
        self._keys[:, :, :length] = keys
        self._values[:, :, :length] = values
        self.length, self.device, self.is_initialized = length, keys.device, True
        self._show()

    def _show(self) -> None:
        self.keys = self._keys[:, :, : self.length]
        self.values = self._values[:, :, : self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        added = key_states.shape[-2]
        if self.length + added > self._keys.shape[-2]:  # past the budget: grow as a concatenating cache would
            self._keys = torch.cat([self.keys, key_states], dim=-2)
            self._values = torch.cat([self.values, value_states], dim=-2)
        else:
            self._keys[:, :, self.length : self.length + added] = key_states
            self._values[:, :, self.length : self.length + added] = value_states
        self.length += added
        self._show()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._keys, self._values = self._keys[indices], self._values[indices]
        self._show()


def expanded(prefix, rows: int, room: int):
    """The batch-1 ``prefix`` cache as a cache of ``rows`` rows with room for ``room`` more tokens (None stays)."""
    from transformers import DynamicCache

    if prefix is None:
        return None
    cache = DynamicCache()
    for index, layer in enumerate(prefix.layers):
        keys, values = layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1)
        if type(layer) is DynamicLayer:
            cache.layers.append(PreallocatedLayer(keys, values, room))
        else:  # sliding-window and other layers keep their own update rules
            cache.update(keys, values, index)
    return cache


def preallocate(cache, room: int):
    """The same cache with every plain dynamic layer preallocated for ``room`` more tokens (others kept)."""
    if cache is None or room <= 0:
        return cache
    for index, layer in enumerate(cache.layers):
        if type(layer) is DynamicLayer and layer.is_initialized and layer.keys.numel():
            cache.layers[index] = PreallocatedLayer(layer.keys, layer.values, room)
    return cache
