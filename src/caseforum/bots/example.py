"""A bot in one small module: `/family NUMBER` shows every family member's card.

This file is the example in docs/bots.md (a test checks the two agree).
"""

from caseforum import hookimpl
from caseforum.bots import Bot, BotAnswer, Triggers, dossier_embed
from caseforum.i18n import N_, Msg
from caseforum.numbers import NumberError


class FamilyBot(Bot):
    name = "family"  # also the username the answers are posted under
    display_name = "Family bot"
    description = "`/family NUMBER`: a card for each member of the patent family."
    triggers = Triggers(commands=("/family",))

    def handle(self, post, ctx):
        try:
            app = ctx.find_dossier(ctx.args)  # with the asker's rights
        except NumberError as exc:
            # in the asker's language, as everything the bot writes (ctx.tr)
            return BotAnswer(ctx.tr(Msg("Write a number after `/family`: %(reason)s",
                                        reason=str(exc))))
        members = ctx.family(app) if app else []
        # The text is the same whether or not the dossier exists; the cards are
        # rendered for each reader, who sees only the members they may see.
        return BotAnswer(
            ctx.tr(N_("Members of this family, as you may see them:")),
            [dossier_embed(m.office_code, m.number) for m in members],
        )


@hookimpl
def register_bots():
    return [FamilyBot()]
