"""The one exception type of legato.codec."""


class CodecError(ValueError):
    """Bad audio, a bad file or bad spectrogram parameters.

    Messages name the offending value (and file, where there is one), the rule it breaks and the fix.
    It subclasses ``ValueError`` so callers that already catch bad-value errors keep working.
    """
