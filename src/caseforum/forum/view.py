"""Posts as one viewer may see them: markers become links or plain text, and
dossier cards and bot blocks are rendered for that viewer, as the dossiers
are now (not as they were when the post was written)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment
from markupsafe import Markup
from sqlmodel import Session, select

from caseforum.authz import Viewer
from caseforum.dossiers.access import Access
from caseforum.models import Application, Office, Post, Reaction, Reference, User

MARKER_RE = re.compile(r'<span data-ref="(\d+)">(.*?)</span>')


@dataclass(frozen=True)
class CardContext:
    """What ``render_reference`` receives as ``reference``."""

    kind: str  # application | publication
    office: str
    number: str
    text: str
    app: Application | None  # None when not found or not visible to the viewer
    access: Access
    env: Environment
    session: Session


@dataclass
class PostView:
    post: Post
    author: User
    author_office: Office | None
    html: Markup
    cards: list[Markup] = field(default_factory=list)
    embeds: list[Markup] = field(default_factory=list)
    reactions: dict[str, int] = field(default_factory=dict)
    mine: set[str] = field(default_factory=set)


class Renderer:
    """Renders posts for one viewer; dossier lookups and cards are cached, so a
    thread that mentions one dossier twenty times looks it up once."""

    def __init__(self, session: Session, viewer: Viewer | None, host: Any,
                 env: Environment) -> None:
        self.session = session
        self.viewer = viewer or Viewer()
        self.access = Access(session, self.viewer)
        self.host = host
        self.env = env
        self._apps: dict[tuple[str, str, str], Application | None] = {}
        self._cards: dict[tuple[str, str, str], Markup | None] = {}

    def app_for(self, kind: str, office: str, number: str) -> Application | None:
        key = (kind, office, number)
        if key not in self._apps:
            if kind == "application":
                app = self.session.exec(select(Application).where(
                    Application.office_code == office, Application.number == number)).first()
            else:
                app = self.session.exec(select(Application).where(
                    Application.publication_number == office + number)).first()
            self._apps[key] = app if self.access.can_see(app) else None
        return self._apps[key]

    def _prefetch(self, refs: list[Reference]) -> None:
        """Look up every dossier a page mentions in two queries, not one per mention."""
        apps_wanted = {(r.office_code, r.number) for r in refs if r.kind == "application"}
        pubs_wanted = {r.office_code + r.number for r in refs if r.kind == "publication"}
        found: dict[tuple[str, str, str], Application] = {}
        if apps_wanted:
            numbers = {n for _, n in apps_wanted}
            for app in self.session.exec(select(Application).where(
                    Application.number.in_(numbers))):  # type: ignore[attr-defined]
                if (app.office_code, app.number) in apps_wanted:
                    found[("application", app.office_code, app.number)] = app
        if pubs_wanted:
            for app in self.session.exec(select(Application).where(
                    Application.publication_number.in_(pubs_wanted))):  # type: ignore[attr-defined]
                pub = app.publication_number
                found[("publication", pub[:2], pub[2:])] = app
        for office, number in apps_wanted:
            key = ("application", office, number)
            if key not in self._apps:
                app = found.get(key)
                self._apps[key] = app if self.access.can_see(app) else None
        for pub in pubs_wanted:
            key = ("publication", pub[:2], pub[2:])
            if key not in self._apps:
                app = found.get(key)
                self._apps[key] = app if self.access.can_see(app) else None

    def card(self, kind: str, office: str, number: str, text: str) -> Markup | None:
        key = (kind, office, number)
        if key not in self._cards:
            app = self.app_for(kind, office, number)
            html = None
            if app is not None:
                ctx = CardContext(kind=kind, office=office, number=number, text=text, app=app,
                                  access=self.access, env=self.env, session=self.session)
                html = self.host.render_reference(reference=ctx, viewer=self.viewer)
            self._cards[key] = Markup(html) if html else None
        return self._cards[key]

    def posts(self, posts: list[Post]) -> list[PostView]:
        if not posts:
            return []
        ids = [p.id for p in posts]
        users = {u.id: u for u in self.session.exec(select(User).where(
            User.id.in_({p.author_id for p in posts})))}  # type: ignore[attr-defined]
        offices = {o.code: o for o in self.session.exec(select(Office))}
        refs: dict[int, list[Reference]] = defaultdict(list)
        for ref in self.session.exec(select(Reference).where(
                Reference.post_id.in_(ids)).order_by(Reference.position)):  # type: ignore[attr-defined]
            refs[ref.post_id].append(ref)
        self._prefetch([r for rs in refs.values() for r in rs])
        counts: dict[int, dict[str, int]] = defaultdict(dict)
        mine: dict[int, set[str]] = defaultdict(set)
        for reaction in self.session.exec(select(Reaction).where(
                Reaction.post_id.in_(ids))):  # type: ignore[attr-defined]
            counts[reaction.post_id][reaction.emoji] = \
                counts[reaction.post_id].get(reaction.emoji, 0) + 1
            if reaction.user_id == self.viewer.user_id:
                mine[reaction.post_id].add(reaction.emoji)
        views = []
        for post in posts:
            author = users[post.author_id]
            view = PostView(post=post, author=author,
                            author_office=offices.get(author.office_code),
                            html=Markup(""), reactions=counts[post.id or 0],
                            mine=mine[post.id or 0])
            if not post.hidden:
                view.html, view.cards = self._body(post, refs[post.id or 0])
                view.embeds = [e for e in (self.embed(spec) for spec in post.embeds) if e]
                if post.quiet and not view.embeds:
                    continue  # a note about a new document this reader may not see
            views.append(view)
        return views

    def _body(self, post: Post, refs: list[Reference]) -> tuple[Markup, list[Markup]]:
        by_position = {r.position: r for r in refs}
        cards: list[Markup] = []
        seen: set[tuple[str, str, str]] = set()

        def replace(match: re.Match[str]) -> str:
            ref = by_position.get(int(match.group(1)))
            text = match.group(2)
            if ref is None:
                return text
            app = self.app_for(ref.kind, ref.office_code, ref.number)
            if app is None:
                return text  # not there, or not for this viewer: plain text
            key = (ref.kind, ref.office_code, ref.number)
            if key not in seen:
                seen.add(key)
                card = self.card(ref.kind, ref.office_code, ref.number, ref.text)
                if card:
                    cards.append(card)
            return (f'<a class="ref" href="/dossiers/{app.office_code}/{app.number}">'
                    f"{text}</a>")

        return Markup(MARKER_RE.sub(replace, post.html)), cards

    def preview(self, body: str, patterns: list | None) -> tuple[Markup, list[Markup]]:
        """The composer's preview: the post as this viewer would see it."""
        from caseforum.forum.text import reference_key, render_post

        rendered = render_post(body, patterns)
        refs = []
        for i, ref in enumerate(rendered.references):
            kind, office, number = reference_key(ref)
            refs.append(Reference(post_id=0, position=i, kind=kind, office_code=office,
                                  number=number, text=ref.text))
        return self._body(Post(thread_id=0, author_id=0, body=body, html=rendered.html), refs)

    def embed(self, spec: dict[str, Any]) -> Markup | None:
        """A bot's block, rendered for this viewer (nothing if they may not see it)."""
        from caseforum.forum.embeds import render_embed

        return render_embed(self, spec)
