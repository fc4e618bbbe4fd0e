# ruff: noqa: F821 (cases, hx and err come from mpy/cases.py, prepended by run_both)
# Cases: (kind, data, arg). parse: a controller message; pong / result: encode
# for an id (arg: error code); describe: an entity list as JSON; env: a relay
# frame to split; hdr: a header for (arg type, data peer id); id: the endpoint
# id of a public key and the text form of it and of arg. One line each.
import json

from homeseal import envelope, ids, messages

for kind, data, arg in cases():
    try:
        if kind == b"parse":
            print(sorted(messages.parse(data).items()))
        elif kind == b"pong":
            print(messages.pong(int(data)).decode())
        elif kind == b"result":
            print(messages.result(int(data), arg.decode() if arg else None).decode())
        elif kind == b"describe":
            print(messages.describe("1.0", "qemu", "Test", json.loads(data)).decode())
        elif kind == b"state":
            print(messages.state(json.loads(data)).decode())
        elif kind == b"env":
            t, peer, payload = envelope.parse(data)
            print(t, hx(peer), hx(payload))
        elif kind == b"id":
            eid = ids.endpoint_id(data)
            print(hx(eid), ids.format_id(eid), ids.format_id(arg))
        else:
            print(hx(envelope.header(int(arg), data)))
    except (messages.MessageError, envelope.EnvelopeError) as e:
        print(err(e))
