"""``edge-demo``: a guided tour of what the foundation layers do, with real bytes.

Until the swarm runtime lands, the demo shows the codec, wire protocol and identity
layers end to end: agents with Ed25519 identities join a coordinator through the signed
handshake, exchange authenticated (optionally encrypted) frames carrying compressed
tensors, and every kind of bad input is refused with a typed error while the link
keeps working.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ruvector_edge.codec import CompressionLevel, TensorCodec
from ruvector_edge.errors import EdgeError
from ruvector_edge.identity import Admission, Identity, generate_join_token
from ruvector_edge.wire import (
    FrameRejected,
    LinkInitiator,
    LinkResponder,
    MessageCodec,
    SwarmMessage,
    SyncPatternsPayload,
)

app = typer.Typer(add_completion=False, help=__doc__)


def _link(
    agent: Identity, coordinator: Identity, admission: Admission, token: str | None, encrypt: bool
) -> tuple[MessageCodec, MessageCodec]:
    """Run JOIN/WELCOME over frames between two codecs; return (agent, coordinator) codecs."""
    agent_codec, coord_codec = MessageCodec(encrypt=encrypt), MessageCodec(encrypt=encrypt)
    initiator = LinkInitiator(agent, "worker", ["python", "rust"], join_token=token)
    responder = LinkResponder(coordinator, admission)
    [join] = coord_codec.feed(agent_codec.encode(initiator.join_message()))
    assert isinstance(join, SwarmMessage)
    try:
        responder.accept_join(join)
    except EdgeError as exc:
        reply = SwarmMessage.error(coordinator.agent_id, exc.code, exc.message)
        [error] = agent_codec.feed(coord_codec.encode(reply))
        assert isinstance(error, SwarmMessage)
        initiator.complete(error)  # raises AuthError("join refused: ...")
    welcome, coord_session = responder.welcome_message("demo-swarm", members=[agent.agent_id])
    [welcome_in] = agent_codec.feed(coord_codec.encode(welcome))
    assert isinstance(welcome_in, SwarmMessage)
    agent_codec.attach_session(initiator.complete(welcome_in))
    coord_codec.attach_session(coord_session)
    return agent_codec, coord_codec


@app.command()
def run(
    agents: Annotated[int, typer.Option(min=1, max=64, help="Number of worker agents.")] = 3,
    size: Annotated[
        int, typer.Option(min=1, max=4_000_000, help="Elements in the shared tensor.")
    ] = 100_000,
    encrypt: Annotated[bool, typer.Option(help="Encrypt frame payloads, not just tag them.")] = (
        True
    ),
    seed: Annotated[int, typer.Option(help="Random seed for the tensor.")] = 0,
) -> None:
    """Join agents to a coordinator, share compressed tensors, and refuse bad input."""
    console = Console()
    token = generate_join_token()
    coordinator = Identity.generate("coordinator")
    admission = Admission(token)
    console.rule("[bold]1. identities and the signed JOIN/WELCOME handshake")
    links: dict[str, tuple[MessageCodec, MessageCodec]] = {}
    roster = Table("agent", "key fingerprint", "session id", "payloads")
    for i in range(agents):
        ident = Identity.generate(f"worker-{i + 1}")
        links[ident.agent_id] = _link(ident, coordinator, admission, token, encrypt)
        session = links[ident.agent_id][0].session
        assert session is not None
        roster.add_row(
            ident.agent_id,
            ident.fingerprint[:16],
            session.session_id.hex()[:16],
            "encrypted" if encrypt else "authenticated",
        )
    console.print(roster)

    console.rule("[bold]2. compressed tensors over authenticated frames")
    rng = np.random.default_rng(seed)
    tensor = rng.standard_normal(size).astype(np.float32)
    agent_id = next(iter(links))
    agent_codec, coord_codec = links[agent_id]
    table = Table("level", "blob bytes", "ratio", "max abs error", "frame bytes", "received")
    for level in CompressionLevel:
        codec = TensorCodec.with_level(level)
        blob = codec.compress_tensor(tensor)
        frame = agent_codec.encode(SwarmMessage.sync_patterns(agent_id, blob, entry_count=size))
        [msg] = coord_codec.feed(frame)
        assert isinstance(msg, SwarmMessage)
        assert isinstance(msg.payload, SyncPatternsPayload)
        # Any codec decodes any blob: the blob says how it was made.
        restored = TensorCodec().decompress_tensor(msg.payload.data)
        error = float(np.max(np.abs(restored - tensor))) if size else 0.0
        table.add_row(
            level.name,
            f"{len(blob):,}",
            f"{tensor.nbytes / len(blob):.2f}x",
            f"{error:.2e}",
            f"{len(frame):,}",
            "ok",
        )
    console.print(table)

    console.rule("[bold]3. bad input is refused; the link keeps serving")
    refusals = Table("attack", "result")
    stranger = Identity.generate("stranger")
    for label, ident, tok in (
        ("join with a wrong token", stranger, "not-the-token"),
        ("join without a token", stranger, None),
        ("claim worker-1's id with another key", Identity.generate("worker-1"), token),
    ):
        try:
            _link(ident, coordinator, admission, tok, encrypt)
            refusals.add_row(label, "[red]admitted (unexpected)")
        except EdgeError as exc:
            refusals.add_row(label, f"[green]{type(exc).__name__}[/]: {exc.message}")
    good = agent_codec.encode(SwarmMessage.ping(agent_id, 1))
    tampered = bytearray(agent_codec.encode(SwarmMessage.ping(agent_id, 2)))
    tampered[20] ^= 0x01
    after = agent_codec.encode(SwarmMessage.ping(agent_id, 3))
    results = coord_codec.feed(good + bytes(tampered) + good + after)
    for label, item in zip(
        ("genuine PING", "PING with one flipped bit", "replayed PING", "next genuine PING"),
        results,
        strict=True,
    ):
        if isinstance(item, FrameRejected):
            refusals.add_row(label, f"[green]{type(item.error).__name__}[/]: {item.error.message}")
        else:
            refusals.add_row(label, "accepted")
    console.print(refusals)
    stats = coord_codec.stats
    console.print(
        f"coordinator link: {stats.frames_in} frames in, {stats.rejected} rejected "
        f"({dict(stats.rejected_by_code)}), {stats.bytes_in:,} bytes"
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
