"""One profile per person: the customers of every store sharing a CRM account, joined by email.

The CRM contact is found or created by normalised email (``mapping.normalise.normalise_email``)
in every CRM Tandem supports, so two stores of one merchant connected to one CRM account
already write to one contact. This module keeps that fact in the state store: a Profile per
(CRM account, email) with the contact's id, a ProfileMember per store customer (or guest
email) of each connection, and a merge reason whenever a person from a second store joins
someone already known, so merges can be listed and audited.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from sync.models import Connection, Profile, ProfileMember, utcnow


@dataclass(frozen=True)
class Person:
    """A store customer (or guest email) whose CRM contact was confirmed."""

    store_id: str
    email: str
    crm_id: str


def _profile(session: Session, crm_platform: str, crm_account: str, email: str) -> Profile:
    dialect = session.get_bind().dialect.name
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(Profile)
    session.execute(
        ins.values(
            crm_platform=crm_platform,
            crm_account=crm_account,
            email=email,
            created_at=utcnow(),
            updated_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=["crm_platform", "crm_account", "email"])
    )
    return session.scalars(
        select(Profile).where(
            Profile.crm_platform == crm_platform,
            Profile.crm_account == crm_account,
            Profile.email == email,
        )
    ).one()


def join(
    session: Session,
    *,
    connection_id: int,
    crm_platform: str,
    crm_account: str,
    people: Sequence[Person],
) -> dict[str, int]:
    """Join each person to the profile of their email; returns store id -> profile id.

    A profile already holding members of other connections gets a merge reason on the new
    member. Concurrent joins are safe: the profile is inserted with ON CONFLICT DO NOTHING.
    """
    out: dict[str, int] = {}
    for person in people:
        profile = _profile(session, crm_platform, crm_account, person.email)
        if profile.crm_id != person.crm_id:
            profile.crm_id = person.crm_id
        member = session.scalar(
            select(ProfileMember).where(
                ProfileMember.connection_id == connection_id,
                ProfileMember.store_id == person.store_id,
            )
        )
        if member is not None and member.profile_id != profile.id:
            member.profile_id = profile.id  # the customer's email changed: another person now
        if member is None:
            others = sorted(
                set(
                    session.scalars(
                        select(ProfileMember.connection_id).where(
                            ProfileMember.profile_id == profile.id,
                            ProfileMember.connection_id != connection_id,
                        )
                    )
                )
            )
            reason = None
            if others:
                names = session.scalars(
                    select(Connection.name).where(Connection.id.in_(others))
                ).all()
                reason = (
                    f"same normalised email as a customer of {', '.join(sorted(names))}: "
                    f"one {crm_platform} contact ({person.crm_id})"
                )
            session.add(
                ProfileMember(
                    profile_id=profile.id,
                    connection_id=connection_id,
                    store_id=person.store_id,
                    merged_reason=reason,
                )
            )
            session.flush()
        out[person.store_id] = profile.id
    return out


def profiles_of(session: Session, connection_id: int, store_ids: Iterable[str]) -> dict[str, int]:
    """store id -> profile id, for this connection's members among ``store_ids``."""
    ids = list(dict.fromkeys(store_ids))
    found: dict[str, int] = {}
    for start in range(0, len(ids), 500):
        for store_id, profile_id in session.execute(
            select(ProfileMember.store_id, ProfileMember.profile_id).where(
                ProfileMember.connection_id == connection_id,
                ProfileMember.store_id.in_(ids[start : start + 500]),
            )
        ):
            found[store_id] = profile_id
    return found


def merges(session: Session, connection_id: int | None = None, limit: int = 100) -> list[dict]:
    """The recorded merges (newest first), optionally those involving one connection."""
    query = (
        select(ProfileMember, Profile)
        .join(Profile, Profile.id == ProfileMember.profile_id)
        .where(ProfileMember.merged_reason.is_not(None))
        .order_by(ProfileMember.id.desc())
        .limit(limit)
    )
    if connection_id is not None:
        query = query.where(ProfileMember.connection_id == connection_id)
    return [
        {
            "profile": profile.id,
            "crm": f"{profile.crm_platform}:{profile.crm_account}",
            "crm_id": profile.crm_id,
            "email": profile.email,
            "connection": member.connection_id,
            "store_id": member.store_id,
            "reason": member.merged_reason,
            "at": member.created_at.isoformat(),
        }
        for member, profile in session.execute(query)
    ]


def known_elsewhere(
    session: Session,
    *,
    connection_id: int,
    crm_platform: str,
    crm_account: str,
    emails: Iterable[str],
) -> dict[str, str]:
    """email -> CRM contact id, for the emails already a person of another connection (store)
    of the same CRM account. Their contact exists and holds what that store wrote."""
    wanted = list(dict.fromkeys(emails))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        rows = session.execute(
            select(Profile.email, Profile.crm_id)
            .join(ProfileMember, ProfileMember.profile_id == Profile.id)
            .where(
                Profile.crm_platform == crm_platform,
                Profile.crm_account == crm_account,
                Profile.email.in_(wanted[start : start + 500]),
                Profile.crm_id.is_not(None),
                ProfileMember.connection_id != connection_id,
            )
        )
        found.update({email: crm_id for email, crm_id in rows})
    return found


def shared_contacts(
    session: Session,
    *,
    connection_id: int,
    crm_platform: str,
    crm_account: str,
    crm_ids: Iterable[str],
) -> set[str]:
    """The CRM contacts among ``crm_ids`` that a customer of another connection is joined to."""
    wanted = list(dict.fromkeys(crm_ids))
    shared: set[str] = set()
    for start in range(0, len(wanted), 500):
        shared.update(
            session.scalars(
                select(Profile.crm_id)
                .join(ProfileMember, ProfileMember.profile_id == Profile.id)
                .where(
                    Profile.crm_platform == crm_platform,
                    Profile.crm_account == crm_account,
                    Profile.crm_id.in_(wanted[start : start + 500]),
                    ProfileMember.connection_id != connection_id,
                )
            )
        )
    return shared


def follow_merges(
    session: Session,
    connection: Connection,
    contact_object: str,
    merges: Sequence[tuple[Sequence[str], str]],
) -> None:
    """The CRM merged contacts (``(merged ids, surviving id)``): this connection's links to
    the merged ones, customers and guest emails alike, and the CRM account's profiles, now
    name the one that survived."""
    from sync.models import Link

    for merged, into in merges:
        ids = [i for i in merged if i != into]
        if not ids:
            continue
        for link in session.scalars(
            select(Link).where(
                Link.connection_id == connection.id,
                Link.entity.in_(["customer", "email"]),
                Link.crm_object == contact_object,
                Link.crm_id.in_(ids),
            )
        ):
            link.crm_id = into
        for profile in session.scalars(
            select(Profile).where(
                Profile.crm_platform == connection.crm_platform,
                Profile.crm_account == connection.crm_account,
                Profile.crm_id.in_(ids),
            )
        ):
            profile.crm_id = into
