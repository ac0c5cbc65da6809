"""Posts as one viewer may see them: markers become links or plain text, and
dossier cards and bot blocks are rendered for that viewer, as the dossiers
are now (not as they were when the post was written).

A dossier gets its whole card once per thread: where a post names a dossier
that an earlier post of the same thread named already (by either of its
numbers) or showed in a bot's card, the later post gets a compact reference
instead (``CardContext.compact``).  "Earlier" means the thread's posts with a
smaller id that are not hidden, whatever the page shows: a thread page walks
its posts in order starting from what :func:`earlier_dossiers` says about the
posts before its first one, and a live post (:mod:`caseforum.forum.live`) asks
:func:`earlier_dossiers` about the posts before it, so the full page and a
pushed post always agree.  Both steps are one query, whatever the number of posts.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jinja2 import Environment
from markupsafe import Markup, escape
from sqlmodel import Session, or_, select

from caseforum import authcache, i18n
from caseforum.authz import PostTarget, ThreadTarget, Viewer, can
from caseforum.dossiers.access import Access
from caseforum.dossiers.lookup import Candidate, candidates, key_candidates, readings_of, resolve
from caseforum.forum.access import thread_target
from caseforum.models import Application, Post, Reaction, Reference, Thread, User
from caseforum.models.account import Role

#: how a reference may match its dossier: as its application or publication number
NAMED = ("application", "publication")
MARKER_RE = re.compile(r'<span data-ref="(\d+)">(.*?)</span>')
MENTION_MARKER_RE = re.compile(r'<span data-mention="([a-z0-9._-]+)">(.*?)</span>')


@dataclass(frozen=True)
class CardContext:
    """What ``prepare_references`` and ``render_reference`` receive as a reference."""

    kind: str  # application | publication
    office: str
    number: str
    text: str
    app: Application | None  # None when not found or not visible to the viewer
    access: Access
    env: Environment
    session: Session
    page: dict[str, Any] = field(default_factory=dict)  # shared by the page's references
    #: the dossier was carded earlier in the thread: a one-line reference, not the card
    compact: bool = False


@dataclass(frozen=True)
class PostData:
    """A post as the templates and the API read it: plain values, no ORM row."""

    id: int
    thread_id: int
    author_id: int
    reply_to_id: int | None
    body: str
    html: str
    embeds: list[dict[str, Any]]
    created_at: datetime
    edited_at: datetime | None
    hidden: bool
    hidden_reason: str
    quiet: bool

    @classmethod
    def of(cls, post: Post) -> PostData:
        return cls(id=post.id or 0, thread_id=post.thread_id, author_id=post.author_id,
                   reply_to_id=post.reply_to_id, body=post.body, html=post.html,
                   embeds=list(post.embeds or []), created_at=post.created_at,
                   edited_at=post.edited_at, hidden=post.hidden,
                   hidden_reason=post.hidden_reason, quiet=post.quiet)


@dataclass(frozen=True)
class AuthorData:
    id: int
    username: str
    label: str
    office_code: str
    role: Role


@dataclass(frozen=True)
class OfficeData:
    code: str
    name: str


class PagePermissions:
    """The viewer's rights on one page, each distinct question answered once.

    ``_post.html`` asks for every post whether the viewer may react, reply and
    moderate; the answers depend on the thread (and for reactions on the post's
    author and hidden flag), so a 200-post page asks the rules a handful of
    times instead of about a thousand.
    """

    def __init__(self, session: Session, viewer: Viewer) -> None:
        self.session = session
        self.viewer = viewer
        self._threads: dict[int, ThreadTarget | None] = {}
        self._answers: dict[tuple[str, Any], bool] = {}
        self._posts: dict[tuple[str, int, int, bool], bool] = {}

    def thread(self, thread_id: int) -> ThreadTarget | None:
        if thread_id not in self._threads:
            thread = self.session.get(Thread, thread_id)
            self._threads[thread_id] = (thread_target(self.session, thread)
                                        if thread is not None else None)
        return self._threads[thread_id]

    def know_thread(self, thread_id: int, target: ThreadTarget | None) -> None:
        """Facts the caller loaded already (the live hub has them for its event)."""
        self._threads[thread_id] = target
        self._posts.clear()

    def can(self, action: str, target: Any) -> bool:
        key = (action, target)
        if key not in self._answers:
            self._answers[key] = can(self.viewer, action, target)
        return self._answers[key]

    def post(self, action: str, post: PostData) -> bool:
        # keyed by plain values: 600 questions on a 200-post page, and hashing the
        # thread's target (frozen sets of offices) for each was most of their cost
        key = (action, post.thread_id, post.author_id, post.hidden)
        found = self._posts.get(key)
        if found is None:
            thread = self.thread(post.thread_id)
            if thread is None:
                found = False
            elif action == "post.react":
                found = self.can(action, PostTarget(thread=thread, author_id=post.author_id,
                                                    hidden=post.hidden))
            else:
                found = self.can(action, thread)
            self._posts[key] = found
        return found


@dataclass
class PostView:
    post: PostData
    author: AuthorData
    author_office: OfficeData | None
    html: Markup
    cards: list[Markup] = field(default_factory=list)
    embeds: list[Markup] = field(default_factory=list)
    reactions: dict[str, int] = field(default_factory=dict)
    mine: set[str] = field(default_factory=set)
    perms: PagePermissions | None = field(default=None, repr=False, compare=False)

    def _can(self, action: str) -> bool:
        return self.perms is not None and self.perms.post(action, self.post)

    @property
    def can_react(self) -> bool:
        return self._can("post.react")

    @property
    def can_reply(self) -> bool:
        return self._can("post.create")

    @property
    def can_moderate(self) -> bool:
        return self._can("forum.moderate")


RefKey = tuple[str, str, str]  # (kind, office, number)
CARD, COMPACT, LINK = "card", "compact", "link"  # how a reference is drawn


def embed_key(spec: dict[str, Any]) -> RefKey | None:
    """The dossier a bot's ``dossier`` or ``citations`` block is about."""
    if spec.get("kind") not in ("dossier", "citations"):
        return None
    kind = "publication" if spec.get("number_kind") == "publication" else "application"
    return kind, str(spec.get("office", "")), str(spec.get("number", ""))


def earlier_dossiers(session: Session, before: dict[int, int | None]) -> dict[int, set[RefKey]]:
    """The dossiers named in each thread before a post: ``before`` maps a thread id
    to a post id (``None``: the whole thread).  What counts: the references of the
    posts that are not hidden and the dossier blocks of bots' posts, the two ways a
    card gets drawn.  One query for all the threads."""
    if not before:
        return {}
    threads = or_(*[(Post.thread_id == thread_id) & (Post.id < post_id)  # type: ignore[operator]
                    if post_id is not None else Post.thread_id == thread_id
                    for thread_id, post_id in before.items()])
    out: dict[int, set[RefKey]] = {thread_id: set() for thread_id in before}
    # each dossier once, however many posts name it (a long thread names a few
    # dossiers hundreds of times): a row per distinct reference, not per post
    for thread_id, kind, office, number in session.exec(
            select(Post.thread_id, Reference.kind, Reference.office_code,  # type: ignore[call-overload]
                   Reference.number).distinct()
            .select_from(Reference).join(Post, Post.id == Reference.post_id)
            .where(threads, Post.hidden.is_(False))):  # type: ignore[attr-defined]
        out[thread_id].add((kind, office, number))
    bots = select(User.id).where(User.role == Role.bot)
    for thread_id, embeds in session.exec(
            select(Post.thread_id, Post.embeds).where(  # type: ignore[call-overload]
                threads, Post.hidden.is_(False),  # type: ignore[attr-defined]
                Post.author_id.in_(bots))):  # type: ignore[attr-defined]
        for spec in embeds or ():
            key = embed_key(spec) if spec.get("kind") == "dossier" else None
            if key is not None:
                out[thread_id].add(key)
    return out


def references_of(session: Session, post_ids: Iterable[int | None]) -> dict[int, list[Any]]:
    """The posts' references by post id, in position order: rows of the columns, not
    ORM objects (400 references load several times faster as plain rows)."""
    refs: dict[int, list[Any]] = defaultdict(list)
    for ref in session.exec(select(  # type: ignore[call-overload]
            Reference.post_id, Reference.position, Reference.kind, Reference.office_code,
            Reference.number, Reference.text).where(
            Reference.post_id.in_(list(post_ids))).order_by(Reference.position)):  # type: ignore[attr-defined]
        refs[ref.post_id].append(ref)
    return refs


@dataclass(frozen=True)
class Person:
    """A mentioned user, as the highlight shows them."""

    label: str
    office_code: str


class Renderer:
    """Renders posts for one viewer and one page.

    Every dossier the page mentions is looked up in two queries, the cards'
    data is loaded for all of them at once (``prepare_references``), each
    dossier's card is rendered once however often it is mentioned, and the
    permission questions of the post template are answered once per page.
    """

    def __init__(self, session: Session, viewer: Viewer | None, host: Any,
                 env: Environment, *, shared: dict[Any, Any] | None = None,
                 locale: i18n.PageLocale | None = None) -> None:
        self.session = session
        #: the reader's language and zone: cards and bot blocks are rendered from the
        #: templates of that language, with that locale current (pages render their
        #: posts before the page itself); ``None``: the environment's own
        self.locale = locale
        #: what does not depend on the viewer (authors, offices, references, dossier
        #: lookups, reactions), kept for the next renderer given the same dict: the live
        #: hub draws one post for several viewer profiles and reads these once
        self.shared = shared
        self.viewer = viewer or Viewer()
        self.access = Access(session, self.viewer)
        self.host = host
        self.env = i18n.for_language(env, locale.code) if locale is not None else env
        self.perms = PagePermissions(session, self.viewer)
        self.page: dict[str, Any] = {}  # what plugins loaded for this page's cards
        # by (key, text as typed): a text is read like the number box reads it; an
        # empty text (a bot's embed, an earlier post's card) names exactly the key's dossier
        self._apps: dict[tuple[RefKey, str], Application | None] = {}
        self._cards: dict[tuple[int, bool], Markup | None] = {}  # by (application id, compact)
        self._prepared: set[tuple[int, bool]] = set()
        self._memo: dict[tuple[str, Any], Any] = {}  # embeds' data, per page
        self._people: dict[str, Person] = {}  # mentioned users who exist, by username

    def app_for(self, kind: str, office: str, number: str,
                text: str = "") -> Application | None:
        wanted = ((kind, office, number), text)
        if wanted not in self._apps:
            self._prefetch([wanted])
        return self._apps[wanted]

    def _prefetch(self, mentions: Iterable[tuple[RefKey, str]]) -> None:
        """Look up every dossier a page mentions at once (one or two statements),
        through the number box's own resolver: a reference's text is read again with
        the one number parser, so a card appears exactly when the number box finds
        the dossier the number names (an embed without text is looked up by its key)."""
        mentions = [m for m in mentions if m not in self._apps]
        readings = readings_of({t for _, t in mentions})
        wanted: dict[tuple[RefKey, str], list[Candidate]] = {}
        for key, text in mentions:
            reading = readings.get(text)
            # the dossier the number names, never a family member found through it
            # (the number box also lists those, marked priority or pct)
            wanted[(key, text)] = ([c for c in candidates(reading) if c[0] in NAMED]
                                   if reading else key_candidates(*key))
        found = self._once("resolve", tuple(sorted(wanted, key=repr)),
                           lambda: resolve(self.session, wanted))
        for mention, matches in found.items():
            visible = [m.app for m in matches if self.access.can_see(m.app)]
            self._apps[mention] = visible[0] if visible else None  # type: ignore[index]

    def _context(self, key: RefKey, text: str, app: Application,
                 compact: bool = False) -> CardContext:
        return CardContext(kind=key[0], office=key[1], number=key[2], text=text, app=app,
                           access=self.access, env=self.env, session=self.session,
                           page=self.page, compact=compact)

    def prepare(self, mentions: Iterable[tuple[RefKey, str] | tuple[RefKey, str, bool]]
                ) -> None:
        """Let the card plugins load what every visible dossier among ``mentions``
        ((key, text) or (key, text, compact)) needs, in one call for all of them."""
        contexts: list[CardContext] = []
        for key, text, *rest in mentions:
            compact = bool(rest and rest[0])
            app = self.app_for(*key, text)
            if app is not None and (app.id or 0, compact) not in self._prepared:
                self._prepared.add((app.id or 0, compact))
                contexts.append(self._context(key, text, app, compact))
        if contexts:
            self.host.prepare_references(references=contexts, viewer=self.viewer)

    def card(self, kind: str, office: str, number: str, text: str,
             compact: bool = False) -> Markup | None:
        """The dossier's card (or, ``compact``, its one-line reference) for this viewer."""
        app = self.app_for(kind, office, number, text)
        if app is None:
            return None
        slot = (app.id or 0, compact)
        if slot not in self._cards:
            key = (kind, office, number)
            self.prepare([(key, text, compact)])
            with self._speaking():
                html = self.host.render_reference(
                    reference=self._context(key, text, app, compact), viewer=self.viewer)
            self._cards[slot] = Markup(html) if html else None
        return self._cards[slot]

    def _once(self, name: str, key: Any, make: Callable[[], Any]) -> Any:
        """``make()``, or what it gave a renderer before that shared ``self.shared``
        (only for what does not depend on the viewer)."""
        if self.shared is None:
            return make()
        slot = (name, key)
        if slot not in self.shared:
            self.shared[slot] = make()
        return self.shared[slot]

    def memo(self, name: str, key: Any, make: Any) -> Any:
        """``make()`` once per page for (name, key): embeds repeated across posts."""
        if (name, key) not in self._memo:
            self._memo[(name, key)] = make()
        return self._memo[(name, key)]

    def _plan(self, posts: list[Post], refs: dict[int, list[Any]],
              earlier: dict[int, set[RefKey]]) -> dict[int, dict[int, str]]:
        """How each reference of each post is drawn (by post id, then position): the
        first mention of a dossier in its thread gets the card, a later post a compact
        reference, a second mention within one post only its link.  ``posts`` in
        thread order; ``earlier``: what :func:`earlier_dossiers` says about the
        posts before them."""
        carded: dict[int, set[int]] = {}
        for thread_id, keys in earlier.items():
            carded[thread_id] = {app.id or 0 for app in (self.app_for(*k) for k in keys)
                                 if app is not None}
        plans: dict[int, dict[int, str]] = {}
        for post in posts:
            if post.hidden:
                continue
            done = carded.setdefault(post.thread_id, set())
            plan: dict[int, str] = {}
            seen: set[int] = set()
            for ref in refs.get(post.id or 0, ()):
                app = self.app_for(ref.kind, ref.office_code, ref.number, ref.text)
                if app is None:
                    continue
                if (app.id or 0) in seen:
                    plan[ref.position] = LINK
                    continue
                seen.add(app.id or 0)
                plan[ref.position] = COMPACT if (app.id or 0) in done else CARD
            for spec in post.embeds or ():
                key = embed_key(spec) if spec.get("kind") == "dossier" else None
                app = self.app_for(*key) if key else None
                if app is not None:
                    seen.add(app.id or 0)  # a bot's card is always whole: it was asked for
            done |= seen
            plans[post.id or 0] = plan
        return plans

    def _load_people(self, names: set[str], author_ids: set[int]) -> dict[int, AuthorData]:
        """The authors (by id), and the mentioned users who exist, in one query."""
        authors, people = self._once("people", (tuple(sorted(names)), tuple(sorted(author_ids))),
                                     lambda: self._read_people(names, author_ids))
        self._people.update(people)
        return authors

    def _read_people(self, names: set[str], author_ids: set[int]
                     ) -> tuple[dict[int, AuthorData], dict[str, Person]]:
        condition = User.id.in_(author_ids)  # type: ignore[union-attr]
        if names:
            condition = or_(condition, User.username.in_(names))  # type: ignore[attr-defined]
        authors: dict[int, AuthorData] = {}
        people: dict[str, Person] = {}
        for user in self.session.exec(select(User).where(condition)):
            if user.id in author_ids:
                authors[user.id or 0] = AuthorData(id=user.id or 0, username=user.username,
                                                   label=user.label,
                                                   office_code=user.office_code, role=user.role)
            if user.username in names:
                people[user.username] = Person(label=user.label, office_code=user.office_code)
        return authors, people

    def posts(self, posts: list[Post],
              earlier: dict[int, set[RefKey]] | None = None) -> list[PostView]:
        """``posts`` in thread order.  ``earlier``: :func:`earlier_dossiers` for the
        posts before them, when the caller has it (asked here otherwise)."""
        if not posts:
            return []
        ids = [p.id for p in posts]
        names = {m.group(1) for p in posts if not p.hidden
                 for m in MENTION_MARKER_RE.finditer(p.html)}
        authors = self._load_people(names, {p.author_id for p in posts})
        offices = {code: OfficeData(code=code, name=office.name)
                   for code, office in authcache.offices(self.session).items()}
        refs: dict[int, list[Any]] = self._once("refs", tuple(ids),
                                                lambda: references_of(self.session, ids))
        if earlier is None:
            first: dict[int, int | None] = {}
            for post in posts:
                first.setdefault(post.thread_id, post.id)
            earlier = earlier_dossiers(self.session, first)
        mentions = [((r.kind, r.office_code, r.number), r.text)
                    for p in posts if not p.hidden for r in refs[p.id or 0]]
        mentions += [(key, "") for p in posts if not p.hidden for spec in p.embeds or []
                     if (key := embed_key(spec)) is not None]
        mentions += [(key, "") for found in earlier.values() for key in found]
        self._prefetch(mentions)
        plans = self._plan(posts, refs, earlier)
        self.prepare([((r.kind, r.office_code, r.number), r.text,
                       plans[p.id or 0].get(r.position) == COMPACT)
                      for p in posts if not p.hidden for r in refs[p.id or 0]
                      if plans[p.id or 0].get(r.position) in (CARD, COMPACT)]
                     + [(key, "") for p in posts if not p.hidden for spec in p.embeds or []
                        if spec.get("kind") == "dossier" and (key := embed_key(spec))])
        for thread_id in {p.thread_id for p in posts}:
            self.perms.thread(thread_id)  # now, not while the template runs after the commit
        counts: dict[int, dict[str, int]] = defaultdict(dict)
        mine: dict[int, set[str]] = defaultdict(set)
        for post_id, emoji, user_id in self._once("reactions", tuple(ids), lambda: list(
                self.session.exec(select(  # type: ignore[call-overload]
                    Reaction.post_id, Reaction.emoji, Reaction.user_id).where(
                    Reaction.post_id.in_(ids))))):  # type: ignore[attr-defined]
            counts[post_id][emoji] = counts[post_id].get(emoji, 0) + 1
            if user_id == self.viewer.user_id:
                mine[post_id].add(emoji)
        views = []
        for post in posts:
            author = authors[post.author_id]
            view = PostView(post=PostData.of(post), author=author,
                            author_office=offices.get(author.office_code),
                            html=Markup(""), reactions=counts[post.id or 0],
                            mine=mine[post.id or 0], perms=self.perms)
            if not post.hidden:
                view.html, view.cards = self._body(post, refs[post.id or 0],
                                                   plans[post.id or 0])
                view.embeds = [e for e in (self.embed(spec) for spec in post.embeds) if e]
                if post.quiet and not view.embeds:
                    continue  # a note about a new document this reader may not see
            views.append(view)
        return views

    def _mention(self, match: re.Match[str]) -> str:
        """A mention marker: highlighted when the user exists, else the text as written."""
        person = self._people.get(match.group(1))
        if person is None:
            return match.group(2)
        return (f'<span class="mention" title="{escape(person.label)} ({person.office_code})">'
                f"{match.group(2)}</span>")

    def _body(self, post: Post, refs: list[Any], plan: dict[int, str]
              ) -> tuple[Markup, list[Markup]]:
        """The post's HTML with its number markers as links (or plain text where the
        viewer may not see the dossier) and its mentions highlighted, and the cards
        (or compact references) of the dossiers it mentions, as ``plan`` says.
        ``refs``: the post's references (``Reference`` rows or rows of its columns)."""
        by_position = {r.position: r for r in refs}
        cards: list[Markup] = []

        def replace(match: re.Match[str]) -> str:
            ref = by_position.get(int(match.group(1)))
            text = match.group(2)
            if ref is None:
                return text
            app = self.app_for(ref.kind, ref.office_code, ref.number, ref.text)
            if app is None:
                return text  # not there, or not for this viewer: plain text
            how = plan.get(ref.position, LINK)
            if how != LINK:
                card = self.card(ref.kind, ref.office_code, ref.number, ref.text,
                                 compact=how == COMPACT)
                if card:
                    cards.append(card)
            return (f'<a class="ref" href="/dossiers/{app.office_code}/{app.number}">'
                    f"{text}</a>")

        html = MENTION_MARKER_RE.sub(self._mention, MARKER_RE.sub(replace, post.html))
        return Markup(html), cards

    def preview(self, body: str, patterns: list | None, thread_id: int | None = None
                ) -> tuple[Markup, list[Markup], list[str]]:
        """The composer's preview: the post as this viewer would see it, as the next
        post of ``thread_id`` (when given: dossiers carded in the thread already get
        their compact reference), and the mentioned names that match no user."""
        from caseforum.forum.text import reference_key, render_post

        rendered = render_post(body, patterns)
        refs = []
        for i, ref in enumerate(rendered.references):
            kind, office, number = reference_key(ref)
            refs.append(Reference(post_id=0, position=i, kind=kind, office_code=office,
                                  number=number, text=ref.text))
        post = Post(id=0, thread_id=thread_id or 0, author_id=0, body=body,
                    html=rendered.html)
        earlier = earlier_dossiers(self.session, {thread_id: None}) if thread_id else {}
        if rendered.mentions:
            self._load_people(set(rendered.mentions), set())
        self._prefetch([((r.kind, r.office_code, r.number), r.text) for r in refs]
                       + [(key, "") for found in earlier.values() for key in found])
        plan = self._plan([post], {0: refs}, earlier)[0]
        self.prepare([((r.kind, r.office_code, r.number), r.text, plan[r.position] == COMPACT)
                      for r in refs if plan.get(r.position) in (CARD, COMPACT)])
        html, cards = self._body(post, refs, plan)
        return html, cards, [n for n in rendered.mentions if n not in self._people]

    def embed(self, spec: dict[str, Any]) -> Markup | None:
        """A bot's block, rendered for this viewer (nothing if they may not see it)."""
        from caseforum.forum.embeds import render_embed

        key = tuple(sorted((str(k), str(v)) for k, v in spec.items()))

        def make() -> Markup | None:
            with self._speaking():
                return render_embed(self, spec)

        return self.memo("embed", key, make)

    def _speaking(self) -> AbstractContextManager[Any]:
        """The reader's locale current while a card or block renders."""
        return i18n.using(self.locale) if self.locale is not None else nullcontext()
