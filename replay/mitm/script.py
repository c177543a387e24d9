"""The addon script of an installed package: `mitmdump -s $(replay addon)`."""

from replay.mitm.addon import ReplayAddon

addons = [ReplayAddon()]
