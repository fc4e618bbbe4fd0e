"""RFC examples (embedded here as facts from the RFCs) and tamper tests, on MicroPython.

RFC 7748 sections 5.2 (both vectors, the 1 and 1,000 iteration cases) and 6.1;
RFC 8439 sections 2.3.2, 2.4.2, 2.5.2, 2.8.2 and A.5 (decryption); RFC 5869 A.1-A.3;
RFC 4231 test cases 1-7. Each call goes through mpy/ops.py on the unix port.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.poly1305 import Poly1305

from tests.firmware_crypto import MPY_SCRIPTS
from tests.support import run_micropython

pytestmark = pytest.mark.micropython

SUNSCREEN = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
).hex()
KEY_00_1F = bytes(range(32)).hex()
K_2_8_2 = bytes(range(0x80, 0xA0)).hex()
NONCE_2_8_2 = "070000004041424344454647"
AAD_2_8_2 = "50515253c0c1c2c3c4c5c6c7"
CT_2_8_2 = (
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fa"
    "fb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4"
    "fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
)
TAG_2_8_2 = "1ae10b594f09e26a7e902ecbd0600691"
K_A5 = "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0"
CT_A5 = (
    "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb24c6cfc18755d43eea09e"
    "e94e382d26b0bdb7b73c321b0100d4f03b7f355894cf332f830e710b97ce98c8a84abd0b948114ad176e"
    "008d33bd60f982b1ff37c8559797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c8"
    "67e4b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523eaf4534d7f83fa115"
    "5b0047718cbc546a0d072b04b3564eea1b422273f548271a0bb2316053fa76991955ebd63159434ecebb"
    "4e466dae5a1073a6727627097a1049e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d"
    "6c6f2c29a6ad5cb4022b02709beead9d67890cbb22392336fea1851f38"
)
PT_A5 = (
    "Internet-Drafts are draft documents valid for a maximum of six months and may be "
    "updated, replaced, or obsoleted by other documents at any time. It is inappropriate to "
    "use Internet-Drafts as reference material or to cite them other than as "
    "/\u201cwork in progress./\u201d"
).encode()
ALICE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
ALICE_PUB = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
BOB = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
BOB_PUB = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
SHARED_6_1 = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
NINE = "09" + "00" * 31
AA131 = "aa" * 131

# (name, call, expected output) — expected as ops.py prints it
CASES: list[tuple[str, list[Any], str]] = [
    (
        "RFC 7748 5.2 vector 1",
        [
            "x25519",
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
        ],
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    ),
    (
        "RFC 7748 5.2 vector 2",
        [
            "x25519",
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
        ],
        "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
    ),
    (
        "RFC 7748 5.2 1 iteration",
        ["x25519_iter", NINE, NINE, 1],
        "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079",
    ),
    (
        "RFC 7748 5.2 1,000 iterations",
        ["x25519_iter", NINE, NINE, 1000],
        "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51",
    ),
    ("RFC 7748 6.1 Alice public", ["public_key", ALICE], ALICE_PUB),
    ("RFC 7748 6.1 Bob public", ["public_key", BOB], BOB_PUB),
    ("RFC 7748 6.1 Alice shared", ["dh", ALICE, BOB_PUB], SHARED_6_1),
    ("RFC 7748 6.1 Bob shared", ["dh", BOB, ALICE_PUB], SHARED_6_1),
    (
        "RFC 8439 2.3.2 block",
        ["chacha20_block", KEY_00_1F, 1, "000000090000004a00000000"],
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e",
    ),
    (
        "RFC 8439 2.4.2 encryption",
        ["chacha20_xor", KEY_00_1F, 1, "000000000000004a00000000", SUNSCREEN],
        "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0bf91b65c5524733ab8f"
        "593dabcd62b3571639d624e65152ab8f530c359f0861d807ca0dbf500d6a6156a38e088a22b65e52bc"
        "514d16ccf806818ce91ab77937365af90bbf74a35be6b40b8eedf2785e42874d",
    ),
    (
        "RFC 8439 2.5.2 Poly1305",
        [
            "poly1305",
            "85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b",
            b"Cryptographic Forum Research Group".hex(),
        ],
        "a8061dc1305136c6c22b8baf0c0127a9",
    ),
    (
        "RFC 8439 2.8.2 AEAD encryption",
        ["encrypt", K_2_8_2, NONCE_2_8_2, AAD_2_8_2, SUNSCREEN],
        CT_2_8_2 + TAG_2_8_2,
    ),
    (
        "RFC 8439 2.8.2 AEAD decryption",
        ["decrypt", K_2_8_2, NONCE_2_8_2, AAD_2_8_2, CT_2_8_2 + TAG_2_8_2],
        SUNSCREEN,
    ),
    (
        "RFC 8439 A.5 AEAD decryption",
        ["decrypt", K_A5, "000000000102030405060708", "f33388860000000000004e91", CT_A5],
        PT_A5.hex(),
    ),
    (
        "RFC 5869 A.1 PRK",
        ["hkdf_extract", "000102030405060708090a0b0c", "0b" * 22],
        "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
    ),
    (
        "RFC 5869 A.1 OKM",
        ["hkdf", "000102030405060708090a0b0c", "0b" * 22, "f0f1f2f3f4f5f6f7f8f9", 42],
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        "RFC 5869 A.2 PRK",
        ["hkdf_extract", bytes(range(0x60, 0xB0)).hex(), bytes(range(0x50)).hex()],
        "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
    ),
    (
        "RFC 5869 A.2 OKM",
        [
            "hkdf",
            bytes(range(0x60, 0xB0)).hex(),
            bytes(range(0x50)).hex(),
            bytes(range(0xB0, 0x100)).hex(),
            82,
        ],
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb"
        "41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        "RFC 5869 A.3 PRK",
        ["hkdf_extract", "", "0b" * 22],
        "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
    ),
    (
        "RFC 5869 A.3 OKM (expand of the A.3 PRK)",
        [
            "hkdf_expand",
            "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            "",
            42,
        ],
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
    (
        "RFC 5869 A.3 OKM",
        ["hkdf", "", "0b" * 22, "", 42],
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
    (
        "RFC 4231 4.2",
        ["hmac", "0b" * 20, b"Hi There".hex()],
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ),
    (
        "RFC 4231 4.3",
        ["hmac", b"Jefe".hex(), b"what do ya want for nothing?".hex()],
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        "RFC 4231 4.4",
        ["hmac", "aa" * 20, "dd" * 50],
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        "RFC 4231 4.5",
        ["hmac", bytes(range(1, 26)).hex(), "cd" * 50],
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (
        "RFC 4231 4.7",
        ["hmac", AA131, b"Test Using Larger Than Block-Size Key - Hash Key First".hex()],
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        "RFC 4231 4.8",
        [
            "hmac",
            AA131,
            (
                b"This is a test using a larger than block-size key and a larger than "
                b"block-size data. The key needs to be hashed before being used by the HMAC "
                b"algorithm."
            ).hex(),
        ],
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]


def run_ops(calls: list[list[Any]]) -> list[str]:
    out = run_micropython(MPY_SCRIPTS / "ops.py", stdin=json.dumps(calls).encode())
    lines = out.splitlines()
    assert len(lines) == len(calls), out
    return lines


def test_rfc_examples() -> None:
    """Every RFC example above gives the RFC's output on the unix port."""
    results = run_ops([call for _, call, _ in CASES])
    failures = [
        f"{name}: got {got}, expected {expected}"
        for (name, _, expected), got in zip(CASES, results, strict=True)
        if got != expected
    ]
    assert not failures, "\n".join(failures)


def test_rfc4231_truncated_tag() -> None:
    """RFC 4231 4.6: the 128-bit truncation of HMAC matches, compared with ct.equal."""
    (full,) = run_ops([["hmac", "0c" * 20, b"Test With Truncation".hex()]])
    assert full[:32] == "a3b6167473100ee06e0c796c2955552b"
    assert run_ops([["ct_equal", full[:32], "a3b6167473100ee06e0c796c2955552b"]]) == ["true"]


def _flip(hex_str: str, bit: int) -> str:
    data = bytearray.fromhex(hex_str)
    data[bit // 8] ^= 1 << (bit % 8)
    return data.hex()


def test_tampering_raises_value_error() -> None:
    """A flipped bit in ciphertext, tag, AD or nonce, a truncated message, a wrong key:
    decrypt raises ValueError every time (and the untouched message still decrypts)."""
    sealed = CT_2_8_2 + TAG_2_8_2
    n_bits = len(sealed) * 4
    calls: list[list[Any]] = [["decrypt", K_2_8_2, NONCE_2_8_2, AAD_2_8_2, sealed]]
    for bit in (0, 7, 333, n_bits - 129, n_bits - 128, n_bits - 60, n_bits - 1):
        calls.append(["decrypt", K_2_8_2, NONCE_2_8_2, AAD_2_8_2, _flip(sealed, bit)])
    for bit in (0, 50, 95):
        calls.append(["decrypt", K_2_8_2, NONCE_2_8_2, _flip(AAD_2_8_2, bit), sealed])
        calls.append(["decrypt", K_2_8_2, _flip(NONCE_2_8_2, bit), AAD_2_8_2, sealed])
    calls += [
        ["decrypt", K_2_8_2, NONCE_2_8_2, "", sealed],
        ["decrypt", K_2_8_2, NONCE_2_8_2, AAD_2_8_2, sealed[:-2]],
        ["decrypt", K_2_8_2, NONCE_2_8_2, AAD_2_8_2, sealed[:30]],
        ["decrypt", K_2_8_2, NONCE_2_8_2, AAD_2_8_2, ""],
        ["decrypt", _flip(K_2_8_2, 255), NONCE_2_8_2, AAD_2_8_2, sealed],
        ["decrypt", K_2_8_2[:-2], NONCE_2_8_2, AAD_2_8_2, sealed],
        ["encrypt", K_2_8_2, NONCE_2_8_2 + "00", AAD_2_8_2, SUNSCREEN],
    ]
    results = run_ops(calls)
    assert results[0] == SUNSCREEN
    bad = [
        (call, got) for call, got in zip(calls[1:], results[1:], strict=True) if got != "ValueError"
    ]
    assert not bad, bad


def test_dh_rejects_low_order_points_and_ct_equal() -> None:
    """dh() raises ValueError for u = 0 and u = 1 (x25519() returns zeros for them);
    generate_private() keys agree through dh(); ct.equal: equal, different content,
    different lengths, empty."""
    priv = ALICE
    results = run_ops(
        [
            ["x25519", priv, "00" * 32],
            ["dh", priv, "00" * 32],
            ["dh", priv, "01" + "00" * 31],
            ["dh", priv, BOB_PUB],
            ["generate_and_agree"],
            ["ct_equal", "00112233", "00112233"],
            ["ct_equal", "00112233", "00112232"],
            ["ct_equal", "80112233", "00112233"],
            ["ct_equal", "00112233", "001122"],
            ["ct_equal", "", ""],
            ["ct_equal", "", "00"],
        ]
    )
    assert results == [
        "00" * 32,
        "ValueError",
        "ValueError",
        SHARED_6_1,
        "true",
        "true",
        "false",
        "false",
        "false",
        "true",
        "false",
    ]


def test_memoryview_and_unaligned_inputs() -> None:
    """Every primitive takes memoryviews (here of bytearrays, one byte off word
    alignment) and gives the same results as for bytes."""
    calls = [call for _, call, _ in CASES if call[0] != "x25519_iter"]
    plain = run_ops(calls)
    views = run_ops([["mv_" + call[0], *call[1:]] for call in calls])
    assert views == plain
    assert plain == [expected for _, call, expected in CASES if call[0] != "x25519_iter"]


def test_poly1305_final_reduction() -> None:
    """With r = 1 the accumulator is the plain sum of the blocks, so two blocks can put it
    at p - 1, p, p + 1 or p + 3 (all below 2**130): exactly the final h >= p selection, which
    random and Wycheproof inputs reach only with negligible probability."""
    key = "01" + "00" * 15 + bytes(range(16)).hex()
    messages = [
        "ff" * 32,  # 2**130 - 2 = p + 3
        "ff" * 16 + "fc" + "ff" * 15,  # p
        "ff" * 16 + "fb" + "ff" * 15,  # p - 1
        "ff" * 16 + "fdfe" + "ff" * 14 + "00",  # p + 1, the last block short
    ]
    calls = [["poly1305", key, m] for m in messages]
    expected = [Poly1305.generate_tag(bytes.fromhex(key), bytes.fromhex(m)).hex() for m in messages]
    assert run_ops(calls) == expected
