"""The assistant's dialogue states in the service database, so any replica continues a
conversation.

Each state is sealed with the data key (AES-256-GCM, the conversation id as associated
data: the questions are free text) in ``assistant_conversations``. A conversation belongs to
the user who started it; another user's id starts a new conversation instead. A state idle
for ``ttl_s`` is deleted when any replica next touches the table, and every expiry and
deletion is written to the audit trail (ids are not patient data; the text never is
logged).

Example:
    >>> store = DatabaseConversations(db, keyring, audit, "alice", "clinician")  # doctest: +SKIP
    >>> state = store.get(store.new_id())  # doctest: +SKIP
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import delete, select

from insightray.assistant.state import DialogueState, new_conversation_id
from insightray.serving.security.audit import AuditLog
from insightray.serving.storage.crypto import KeyRing
from insightray.serving.storage.db.models import AssistantConversation, utc_now
from insightray.serving.storage.db.session import Database

__all__ = ["DatabaseConversations"]

#: Expired rows removed per sweep (each is audited in the same transaction).
_SWEEP_LIMIT = 100


class DatabaseConversations:
    """A :class:`~insightray.assistant.state.ConversationStore` for one user's requests.

    Args:
        db: The service database.
        keyring: Seals the states.
        audit: Where expiries and deletions are recorded.
        owner: The user asking.
        role: The user's role (for the audit trail).
        ttl_s: Idle time after which a conversation is deleted.
        max_turns: Turns kept per conversation.
    """

    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        audit: AuditLog,
        owner: str,
        role: str,
        ttl_s: int = 1800,
        max_turns: int = 20,
    ) -> None:
        self.db, self.keyring, self.audit = db, keyring, audit
        self.owner, self.role = owner[:64], role
        self.ttl = timedelta(seconds=ttl_s)
        self.max_turns = max_turns

    @staticmethod
    def new_id() -> str:
        """A fresh random conversation id."""
        return new_conversation_id()

    def get(self, conversation_id: str) -> DialogueState:
        """The live state of ``conversation_id``; a new one when unknown, expired or
        another user's (then under a fresh id)."""
        self.expire()
        with self.db.session(read_only=True) as session:
            row = session.get(AssistantConversation, conversation_id)
            if row is None:
                return DialogueState(conversation_id, max_turns=self.max_turns)
            if row.owner != self.owner:
                return DialogueState(self.new_id(), max_turns=self.max_turns)
            sealed = row.state
        data = json.loads(self.keyring.decrypt(sealed, aad=conversation_id.encode()))
        return DialogueState.from_dict(data, self.max_turns)

    def save(self, state: DialogueState) -> None:
        """Seal and keep ``state``; its expiry moves ``ttl_s`` ahead."""
        now = utc_now()
        plain = json.dumps(state.to_dict(), ensure_ascii=False).encode()
        sealed = self.keyring.encrypt(plain, aad=state.conversation_id.encode())
        with self.db.session() as session:
            row = session.get(AssistantConversation, state.conversation_id)
            if row is None:
                session.add(
                    AssistantConversation(
                        id=state.conversation_id, owner=self.owner, state=sealed,
                        created_at=now, updated_at=now, expires_at=now + self.ttl,
                    )
                )  # fmt: skip
                self.audit.append_in(session, self.owner, self.role,
                                     "assistant.conversation.create", outcome="ok")  # fmt: skip
            elif row.owner == self.owner:
                row.state, row.updated_at, row.expires_at = sealed, now, now + self.ttl

    def delete(self, conversation_id: str) -> bool:
        """Delete one of this user's conversations (audited); whether it existed."""
        with self.db.session() as session:
            row = session.get(AssistantConversation, conversation_id)
            found = row is not None and row.owner == self.owner
            if found:
                session.delete(row)
            self.audit.append_in(session, self.owner, self.role,
                                 "assistant.conversation.delete",
                                 outcome="ok" if found else "not_found")  # fmt: skip
        return found

    def expire(self) -> int:
        """Delete conversations idle past their expiry, one audit record each; how many."""
        now = utc_now()
        with self.db.session(read_only=True) as session:
            stale = session.scalars(
                select(AssistantConversation.id)
                .where(AssistantConversation.expires_at <= now)
                .limit(_SWEEP_LIMIT)
            ).all()
        if not stale:
            return 0
        removed = 0
        with self.db.session() as session:
            for conversation_id in stale:
                gone = session.execute(
                    delete(AssistantConversation).where(
                        AssistantConversation.id == conversation_id,
                        AssistantConversation.expires_at <= now,
                    )
                )
                if getattr(gone, "rowcount", 0):
                    removed += 1
                    self.audit.append_in(session, "system", "system",
                                         "assistant.conversation.expire", outcome="ok")  # fmt: skip
        return removed

    def __contains__(self, conversation_id: object) -> bool:
        if not isinstance(conversation_id, str):
            return False
        with self.db.session(read_only=True) as session:
            return session.get(AssistantConversation, conversation_id) is not None
