"""The command line: every absl flag and ``main``. Flags come from the
configuration dataclasses (``flags``); ``runner`` trains one experiment; the
tool commands wrap the library. Nothing in the library imports this
package."""
