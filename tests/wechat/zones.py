"""Time zones the wire-protocol tests need beyond the standard library's."""

from datetime import tzinfo


class NoOffset(tzinfo):
    """A zone that does not know its offset: as good as none (Python treats it as naive)."""

    def utcoffset(self, dt):
        return None

    def dst(self, dt):
        return None
