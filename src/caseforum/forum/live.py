"""HTML fragments pushed to live viewers, one per event, as each viewer may see it.

One :class:`LiveEvent` per event, in one database session, answers for every
viewer watching: the event's thread, post and their authorization facts are
loaded once, and a fragment is rendered once per distinct *output*, keyed by
what actually changes it (:meth:`LiveEvent.post_key`: the role, and what the
authorization rules let the viewer see of the dossiers the post mentions), not
once per socket or per office.  With seven offices watching a post that mentions
one dossier this is two or three renders instead of seven.

Each viewer reads in their own language and zone (``Viewer.language`` and
``time_zone``, taken at the socket's handshake).  A fragment is rendered once per
output *and language*, from the templates compiled for that language
(``i18n.for_language``), with its times left as placeholders
(``i18n.PageLocale.zone_later``); each zone's copy only fills those in
(``i18n.fill_times``).  A room that reads one language costs what it did before any
of this: seven offices in seven zones still share two or three renders.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from jinja2 import Environment
from sqlmodel import Session, or_, select

from caseforum import authcache, i18n
from caseforum.authz import DocumentTarget, DossierTarget, ThreadTarget, Viewer, can
from caseforum.forum import inbox, service
from caseforum.forum.access import post_target, thread_targets
from caseforum.forum.view import Renderer, earlier_dossiers, references_of
from caseforum.models import (
    Application,
    Document,
    DocumentOffice,
    Event,
    Post,
    ReadState,
    Reference,
    Thread,
)

THREAD_KINDS = {"post.created", "post.edited", "post.hidden", "post.shown", "post.reacted",
                "thread.changed"}


def topics_of(event: Event) -> set[str]:
    """Which live channels an event concerns."""
    if event.kind in THREAD_KINDS or event.kind == "thread.created":
        thread_id = event.payload.get("thread_id")
        # a quiet note changes no list row: it must not move the thread for anyone
        topics = set() if event.payload.get("quiet") else {"forum"}
        if event.kind in THREAD_KINDS:
            topics.add(f"thread:{thread_id}")
        return topics
    if event.kind in ("notification.created", "notification.read"):
        users = event.payload.get("user_ids") or [event.payload.get("user_id")]
        return {f"user:{user_id}" for user_id in users}  # one event may ring many bells
    return set()


def _names(ref: Reference, app: Application) -> bool:
    """Whether a post's reference names ``app`` (as :meth:`LiveEvent._card_facts`
    looks dossiers up: by application number, else by publication number)."""
    if ref.kind == "application":
        return app.office_code == ref.office_code and app.number == ref.number
    return app.publication_number == ref.office_code + ref.number


class LiveEvent:
    """Everything one event looks like to the viewers watching it (sync: runs in a
    worker thread, with one session for all of them)."""

    def __init__(self, session: Session, env: Environment, host: Any, event: Event) -> None:
        self.session = session
        self.env = env
        self.host = host
        self.event = event
        self.renders = 0
        self._thread: Thread | None = None
        self._target: ThreadTarget | None = None
        self._post: Post | None = None
        self._loaded = False
        self._facts: list[tuple[Any, list[Any], list[Any]]] | None = None
        self._earlier: dict[int, set[Any]] | None = None  # the thread before the post
        self._fragments: dict[Any, str | None] = {}
        self._keys: dict[Any, Any] = {}
        self._shared: dict[Any, Any] = {}  # what every render of this event reads alike
        self._default = i18n.default_locale(env)
        self._zoned: dict[tuple[Any, str], str] = {}  # by (render's key, zone)

    # languages and zones ------------------------------------------------------

    def _language(self, viewer: Viewer) -> str:
        return viewer.language or self._default.code

    def _in_language(self, key: Any, viewer: Viewer,
                     render: Callable[[Environment], str | None]) -> str | None:
        """``render(env)`` once per ``key`` and language, in the viewer's language
        with its times left open; then the copy for the viewer's zone, once per zone."""
        code = self._language(viewer)
        slot = (key, code)
        if slot not in self._fragments:
            self.renders += 1
            with i18n.using(i18n.PageLocale.zone_later(code)):
                self._fragments[slot] = render(i18n.for_language(self.env, code))
        html = self._fragments[slot]
        if html is None:
            return None
        zone_name = viewer.time_zone
        found = self._zoned.get((slot, zone_name))
        if found is None:
            where = i18n.zone(zone_name) if zone_name else self._default.zone
            found = self._zoned[(slot, zone_name)] = i18n.fill_times(html, where)
        return found

    # what the event is about ---------------------------------------------------

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        thread_id = self.event.payload.get("thread_id")
        if isinstance(thread_id, int):
            # the query for the thread's authorization facts loads the thread itself
            # too, which the session then hands out without a query of its own
            self._target = thread_targets(self.session, [thread_id]).get(thread_id)
            self._thread = self.session.get(Thread, thread_id)
        post_id = self.event.payload.get("post_id")
        if post_id is not None and self.event.kind != "thread.changed":
            self._post = self.session.get(Post, post_id)

    def may_see_thread(self, viewer: Viewer) -> bool:
        """Checked for every viewer on every event, against the thread as it is now."""
        self._load()
        return self._target is not None and can(viewer, "thread.view", self._target)

    def _card_facts(self) -> list[tuple[Any, list[Any], list[Any]]]:
        """For each dossier the post mentions: its target, its family members'
        targets and its documents' targets: everything the authorization rules look
        at when a card is drawn (the card shows the visible family size, the latest
        visible documents and the citations of visible documents); a dossier named
        earlier in the thread gets a one-line reference, so only its own target
        counts.  Loaded once per event, in at most five queries, looked up the way
        :class:`Renderer` looks them up."""
        if self._facts is not None:
            return self._facts
        post = self._post
        assert post is not None
        # read as the renders read them, and once for them (Renderer.shared)
        refs = self._shared.setdefault(("refs", (post.id,)), references_of(
            self.session, [post.id]))[post.id or 0]
        conditions = [(Application.office_code == ref.office_code)
                      & (Application.number == ref.number) if ref.kind == "application"
                      else Application.publication_number == ref.office_code + ref.number
                      for ref in refs]
        apps = list(self.session.exec(select(Application).where(or_(*conditions)))) \
            if conditions else []
        public = {code: office.public_access
                  for code, office in authcache.offices(self.session).items()}
        # a dossier named earlier in the thread gets a one-line reference, which shows
        # nothing of its family or documents: only the others' are loaded and asked about
        before = self.earlier().get(post.thread_id, set())
        fresh = [r for r in refs if (r.kind, r.office_code, r.number) not in before]
        carded = [a for a in apps if any(_names(r, a) for r in fresh)]
        families = {a.family_id for a in carded if a.family_id is not None}
        members: dict[int, list[DossierTarget]] = defaultdict(list)
        if families:
            for family_id, office in self.session.exec(
                    select(Application.family_id, Application.office_code).where(
                        Application.family_id.in_(families))):  # type: ignore[union-attr]
                members[family_id].append(DossierTarget(office, public.get(office, False)))
        docs: dict[int, list[tuple[int, str]]] = defaultdict(list)
        named: dict[int, set[str]] = defaultdict(set)
        if carded:
            for doc_id, app_id, visibility in self.session.exec(
                    select(Document.id, Document.application_id, Document.visibility).where(
                        Document.application_id.in_([a.id for a in carded]))):  # type: ignore[attr-defined]
                docs[app_id].append((doc_id, str(visibility)))
            restricted = [d for rows in docs.values() for d, v in rows if v == "restricted"]
            if restricted:
                for doc_id, office in self.session.exec(
                        select(DocumentOffice.document_id, DocumentOffice.office_code).where(
                            DocumentOffice.document_id.in_(restricted))):  # type: ignore[attr-defined]
                    named[doc_id].add(office)
        carded_ids = {a.id or 0 for a in carded}
        facts = []
        for app in sorted(apps, key=lambda a: a.id or 0):
            target = DossierTarget(app.office_code, public.get(app.office_code, False))
            if (app.id or 0) not in carded_ids:  # a one-line reference: the dossier alone
                facts.append((target, [], []))
                continue
            family = members[app.family_id] if app.family_id is not None else [target]
            documents = [DocumentTarget(app.office_code, target.public_access, visibility,
                                        frozenset(named.get(doc_id, ())))
                         for doc_id, visibility in docs[app.id or 0]]
            facts.append((target, family, documents))
        self._facts = facts
        return facts

    def earlier(self) -> dict[int, set[Any]]:
        """The dossiers named in the thread before the post (:func:`earlier_dossiers`),
        read once per event, not per render."""
        if self._earlier is None:
            post = self._post
            assert post is not None
            self._earlier = earlier_dossiers(self.session, {post.thread_id: post.id})
        return self._earlier

    def post_key(self, viewer: Viewer) -> tuple[Any, ...]:
        """What decides a post fragment for a viewer who may see the thread: the
        answers to the permission questions the template asks (react, reply,
        moderate) and, for a post that mentions dossiers, what the rules let this
        viewer see of each of them, its family and its documents.  Seven offices
        watching a post about one dossier thus share two or three renders.  Bot
        blocks (embeds) look at more, so such posts are keyed by the whole profile."""
        post = self._post
        assert post is not None and self._target is not None
        # the questions forum/_post.html asks about the viewer
        rights = (can(viewer, "post.react", post_target(self._target, post)),
                  can(viewer, "post.create", self._target),
                  can(viewer, "forum.moderate", self._target))
        if post.hidden or "<span data-ref=" not in post.html and not post.embeds:
            return rights
        if post.embeds:
            return ("profile", viewer.profile)
        seen = tuple(
            (can(viewer, "dossier.view", target),
             tuple(can(viewer, "dossier.view", m) for m in family),
             tuple(can(viewer, "document.view", d) for d in documents))
            for target, family, documents in self._card_facts())
        return (rights, seen)

    # fragments ------------------------------------------------------------------

    def thread_html(self, viewer: Viewer) -> str | None:
        """The change to one thread page, or None when this viewer sees nothing of it."""
        if not self.may_see_thread(viewer):
            return None
        thread = self._thread
        assert thread is not None
        if self.event.kind == "thread.changed":
            key: Any = ("status",)
        elif self._post is None:
            return None
        else:
            # the rules look at who the user is only for a private thread's members;
            # otherwise equal profiles get equal answers, so ask once per profile
            who = (viewer.profile, viewer.user_id if thread.is_private else None)
            if who not in self._keys:
                self._keys[who] = self.post_key(viewer)
            key = self._keys[who]
        return self._in_language(("thread", key), viewer,
                                 lambda env: self._render_thread(viewer, env))

    def _render_thread(self, viewer: Viewer, env: Environment) -> str | None:
        thread, event = self._thread, self.event
        assert thread is not None
        if event.kind == "thread.changed":
            return env.get_template("forum/_thread_status.html").render(
                thread=thread, oob=True, event_id=event.id)
        post = self._post
        assert post is not None
        renderer = Renderer(self.session, viewer, self.host, env, shared=self._shared,
                            locale=i18n.current())
        # the thread's authorization facts are loaded already (_load): not once more
        # per render (PagePermissions would otherwise query them for the template)
        renderer.perms.know_thread(thread.id or 0, self._target)
        views = renderer.posts([post], earlier=self.earlier())
        if not views:
            return None  # a bot note this viewer may not see
        view = views[0]
        view.mine = set()  # shared by every socket of the key: no one user's pressed state
        # rendered once for many sockets: no per-session CSRF token in the forms;
        # htmx sends each user's own token in a header (static/js/app.js)
        return env.get_template("forum/_post.html").render(
            p=view, viewer=viewer, thread=thread, target=self._target, event_id=event.id,
            reactions=service.REACTIONS, csrf_token="",
            oob="new" if event.kind == "post.created" else "replace")

    def forum_rows(self, viewers: Iterable[Viewer]) -> dict[Viewer, str]:
        """The thread's row in the forum list for each viewer who may see it.  The
        row carries the user's unread count (as :func:`service.unread_counts` counts
        it): counted for all users in two queries, and rendered once per distinct
        count."""
        allowed = [v for v in set(viewers) if self.may_see_thread(v)]
        thread = self._thread
        if not allowed or thread is None:
            return {}
        user_ids = {v.user_id or 0 for v in allowed}
        marks = {user_id: mark for user_id, mark in self.session.exec(
            select(ReadState.user_id, ReadState.last_read_post_id).where(
                ReadState.thread_id == thread.id,
                ReadState.user_id.in_(user_ids)))}  # type: ignore[attr-defined]
        posts = list(self.session.exec(select(Post.id, Post.author_id).where(
            Post.thread_id == thread.id, Post.hidden.is_(False),  # type: ignore[attr-defined]
            Post.quiet.is_(False))))  # type: ignore[attr-defined]
        out: dict[Viewer, str] = {}

        def row(unread: int) -> Callable[[Environment], str]:
            return lambda env: env.get_template("forum/_live_row.html").render(
                t=thread, unread=unread, event_id=self.event.id,
                new=self.event.kind == "thread.created")

        for viewer in allowed:
            uid = viewer.user_id or 0
            mark = marks.get(uid) or 0
            unread = sum(1 for pid, author in posts if (pid or 0) > mark and author != uid)
            html = self._in_language(("row", unread), viewer, row(unread))
            if html is not None:
                out[viewer] = html
        return out

    def bell_html(self, user_id: int, viewers: Iterable[Viewer]) -> dict[Viewer, str]:
        """The user's bell and the home page's "For you" list, both of what the user
        may still read (:func:`inbox.for_you`: a few statements however many are
        unread), rendered once per distinct profile among the user's sockets
        (almost always one)."""
        out: dict[Viewer, str] = {}
        mine: dict[Any, Any] = {}  # what the user may read, asked once per profile

        def bell(viewer: Viewer) -> Callable[[Environment], str]:
            def render(env: Environment) -> str:
                if viewer.profile not in mine:
                    mine[viewer.profile] = inbox.for_you(self.session, viewer)
                notes = mine[viewer.profile]
                return env.get_template("partials/live_bell.html").render(
                    count=notes.count, groups=notes.groups, oob=True,
                    event_id=self.event.id)
            return render

        for viewer in viewers:
            html = self._in_language(("bell", user_id, viewer.profile), viewer, bell(viewer))
            if html is not None:
                out[viewer] = html
        return out

    def _alike(self, viewers: Iterable[Viewer]) -> Iterable[list[Viewer]]:
        """The viewers in groups that the thread rules answer alike and that read alike:
        the same profile, language and zone and, in a private thread (whose members are
        named users), the same user.  Five hundred sockets of seven offices are seven
        questions, not five hundred."""
        self._load()
        private = self._thread is not None and self._thread.is_private
        groups: dict[Any, list[Viewer]] = defaultdict(list)
        for viewer in viewers:
            who = viewer.user_id if private else viewer.user_id is not None
            groups[(viewer.profile, who, viewer.language, viewer.time_zone)].append(viewer)
        return groups.values()

    def fragments(self, wanted: dict[str, set[Viewer]]) -> dict[tuple[str, Viewer], str]:
        """Every fragment the watchers of this event get, by (topic, viewer)."""
        out: dict[tuple[str, Viewer], str] = {}
        for topic, viewers in wanted.items():
            if topic.startswith("thread:"):
                for members in self._alike(viewers):
                    html = self.thread_html(members[0])
                    if html:
                        for viewer in members:
                            out[(topic, viewer)] = html
            elif topic == "forum":
                for viewer, html in self.forum_rows(viewers).items():
                    out[(topic, viewer)] = html
            elif topic.startswith("user:"):
                for viewer, html in self.bell_html(int(topic[5:]), viewers).items():
                    out[(topic, viewer)] = html
        return out
