# The Noise handshake patterns (revision 34, sections 7.4, 7.5 and 18.2) other
# than KK, in noise.py's notation: "initiator pre-message|responder
# pre-message|message 1|message 2|...", messages alternating, the first one
# from the initiator (->). noise.parse_protocol_name() imports this module the
# first time a pattern other than KK is asked for (test vectors); the device
# itself never does.
PATTERNS = {
    # One-way (7.4)
    "N": "|s|e es",
    "K": "s|s|e es ss",
    "X": "|s|e es s ss",
    # Interactive fundamental (7.5)
    "NN": "||e|e ee",
    "NK": "|s|e es|e ee",
    "NX": "||e|e ee s es",
    "XN": "||e|e ee|s se",
    "XK": "|s|e es|e ee|s se",
    "XX": "||e|e ee s es|s se",
    "KN": "s||e|e ee se",
    # "KK" is in noise.py: the pattern the device speaks, always loaded.
    "KX": "s||e|e ee se s es",
    "IN": "||e s|e ee se",
    "IK": "|s|e es s ss|e ee se",
    "IX": "||e s|e ee se s es",
    # Deferred (18.2)
    "NK1": "|s|e|e ee es",
    "NX1": "||e|e ee s|es",
    "X1N": "||e|e ee|s|se",
    "X1K": "|s|e es|e ee|s|se",
    "XK1": "|s|e|e ee es|s se",
    "X1K1": "|s|e|e ee es|s|se",
    "X1X": "||e|e ee s es|s|se",
    "XX1": "||e|e ee s|es s se",
    "X1X1": "||e|e ee s|es s|se",
    "K1N": "s||e|e ee|se",
    "K1K": "s|s|e es|e ee|se",
    "KK1": "s|s|e|e ee se es",
    "K1K1": "s|s|e|e ee es|se",
    "K1X": "s||e|e ee s es|se",
    "KX1": "s||e|e ee se s|es",
    "K1X1": "s||e|e ee s|se es",
    "I1N": "||e s|e ee|se",
    "I1K": "|s|e es s|e ee|se",
    "IK1": "|s|e s|e ee se es",
    "I1K1": "|s|e s|e ee es|se",
    "I1X": "||e s|e ee s es|se",
    "IX1": "||e s|e ee se s|es",
    "I1X1": "||e s|e ee s|se es",
}
