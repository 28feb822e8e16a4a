"""The platform's event-driven interfaces as an AsyncAPI 3.0 document, generated from the code.

Two servers: the Kafka broker (every topic of ``churn_shared.contracts``, with the one envelope
and each contract's payload, plus the dead-letter topics) and the gateway's Socket.IO live feed
(each event the gateway emits to a tenant's room, with its payload). The document is committed
as ``asyncapi/asyncapi.json`` and checked for drift like the OpenAPI document
(``churn asyncapi --check``), so it cannot disagree with the contracts it is made from.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

REF = "#/components/schemas/{model}"
#: Topics the platform consumes from producers outside it; the others it publishes.
INBOUND_TOPICS = frozenset({"customer.events.v1"})

ENVELOPE_DESCRIPTION = (
    "Every message on every topic is one JSON envelope (UTF-8). `event_type` names the payload's "
    "contract and `payload` carries it. `key` is the customer id and is also the Kafka message "
    "key, so one customer's messages stay in order on one partition. `occurred_at` must carry a "
    "timezone (RFC 3339, e.g. `2026-11-01T10:00:00Z`). Fields not listed are rejected. A message "
    "that is not a valid envelope, names an unknown `event_type`, or keeps failing is moved to "
    "`<topic>.dlq` with the reason in its `x-error` header. The `x-request-id` header, when "
    "present, is carried into every service's logs."
)

PROPERTY_NOTES = (
    "Properties the features read: `order_placed` → `amount` (number, order value) and "
    "`discount` (number, > 0 when a discount was used); `loyalty_points_changed` → `balance` "
    "(number, the new balance) or `delta` (number, the signed change). Other event types need "
    "no properties; extra properties are stored and ignored by the features."
)


def _doc(model: type[BaseModel]) -> str:
    return inspect.cleandoc(model.__doc__ or "").split("\n\n")[0].replace("\n", " ")


def _schemas(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    """JSON Schemas of ``models`` with their nested definitions hoisted into one table."""
    table: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF, mode="serialization")
        for name, definition in schema.pop("$defs", {}).items():
            table[name] = definition
        table[model.__name__] = schema
    return dict(sorted(table.items()))


def _kafka_message(contract: type[Any]) -> dict[str, Any]:
    name = contract.__name__
    message: dict[str, Any] = {
        "name": contract.event_type,
        "title": name,
        "summary": _doc(contract),
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": {
                "x-request-id": {
                    "type": "string",
                    "description": "Correlates the message with the request that caused it.",
                }
            },
        },
        "payload": {
            "allOf": [
                {"$ref": REF.format(model="Envelope")},
                {
                    "type": "object",
                    "properties": {
                        "event_type": {"const": contract.event_type},
                        "payload": {"$ref": REF.format(model=name)},
                    },
                },
            ]
        },
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The customer id (= envelope `key`)."},
                "bindingVersion": "0.5.0",
            }
        },
    }
    if contract.topic in INBOUND_TOPICS:
        message["description"] = PROPERTY_NOTES
    return message


def build_asyncapi() -> dict[str, Any]:
    from churn_gateway.events.handlers import LIVE_EVENTS
    from churn_gateway.realtime import SOCKETIO_MOUNT_PATH
    from churn_shared.contracts import EVENT_CONTRACTS
    from churn_shared.kafka import Envelope

    contracts = sorted(EVENT_CONTRACTS, key=lambda c: (c.topic, c.event_type))
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    topics = sorted({c.topic for c in contracts})
    for topic in topics:
        on_topic = [c for c in contracts if c.topic == topic]
        channel_id = topic.replace(".", "_")
        refs = {}
        for contract in on_topic:
            messages[contract.__name__] = _kafka_message(contract)
            refs[contract.__name__] = {"$ref": f"#/components/messages/{contract.__name__}"}
        channels[channel_id] = {
            "address": topic,
            "title": topic,
            "description": "Keyed by customer id.",
            "servers": [{"$ref": "#/servers/kafka"}],
            "messages": refs,
        }
        inbound = topic in INBOUND_TOPICS
        operations[f"{'receive' if inbound else 'publish'}_{channel_id}"] = {
            "action": "receive" if inbound else "send",
            "title": (
                "Produce customer events to the platform"
                if inbound
                else f"The platform publishes {topic}"
            ),
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{n}"} for n in refs],
        }
        dlq = f"{topic}.dlq"
        dlq_id = dlq.replace(".", "_")
        channels[dlq_id] = {
            "address": dlq,
            "title": dlq,
            "description": f"Messages of `{topic}` that could not be applied, as they arrived.",
            "servers": [{"$ref": "#/servers/kafka"}],
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        }
        operations[f"publish_{dlq_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{dlq_id}"},
            "messages": [{"$ref": f"#/channels/{dlq_id}/messages/DeadLetter"}],
        }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "summary": "The original message bytes, unchanged.",
        "headers": {
            "type": "object",
            "properties": {
                "x-error": {"type": "string", "description": "Why it was not applied."},
                "x-original-topic": {"type": "string"},
                "x-request-id": {"type": "string"},
            },
            "required": ["x-error", "x-original-topic"],
        },
        "payload": {"description": "Whatever was on the original topic (usually an envelope)."},
    }
    live_refs: dict[str, Any] = {}
    for contract, event in sorted(LIVE_EVENTS.items(), key=lambda item: item[1]):
        message_id = f"live_{event}"
        messages[message_id] = {
            "name": event,
            "title": event,
            "summary": _doc(contract),
            "contentType": "application/json",
            "payload": {"$ref": REF.format(model=contract.__name__)},
        }
        live_refs[event] = {"$ref": f"#/components/messages/{message_id}"}
    channels["live_feed"] = {
        "address": SOCKETIO_MOUNT_PATH,
        "title": "Live feed (Socket.IO)",
        "description": (
            'Connect a Socket.IO client to the gateway with `auth={"token": ACCESS_TOKEN}`; '
            "the events of the caller's tenant only arrive, named as the messages below."
        ),
        "servers": [{"$ref": "#/servers/gateway"}],
        "messages": live_refs,
    }
    operations["emit_live_feed"] = {
        "action": "send",
        "title": "The gateway emits to the tenant's room",
        "channel": {"$ref": "#/channels/live_feed"},
        "messages": [{"$ref": f"#/channels/live_feed/messages/{e}"} for e in live_refs],
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Churn early-warning platform: events",
            "version": "1",
            "description": ENVELOPE_DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "Apache Kafka in production; the embedded Tansu broker locally.",
                "variables": {"bootstrap": {"default": "127.0.0.1:9092"}},
            },
            "gateway": {
                "host": "{host}",
                "protocol": "ws",
                "description": "The gateway's Socket.IO endpoint (WebSocket or HTTP polling).",
                "variables": {"host": {"default": "127.0.0.1:8000"}},
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": dict(sorted(messages.items())),
            "schemas": _schemas([Envelope, *contracts]),
        },
    }
