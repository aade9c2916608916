"""The benchmark site: one model that uses the mixin, and the views the targets compare."""
