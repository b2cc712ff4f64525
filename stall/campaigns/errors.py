from django.utils.translation import gettext_noop

from stall.core.errors import Conflict, InvalidRequest, NotFound


class CampaignNotFound(NotFound):
    default_message = gettext_noop("No such campaign.")


class RewardTierNotFound(NotFound):
    default_message = gettext_noop("No such reward tier.")


class PledgeNotFound(NotFound):
    default_message = gettext_noop("No such pledge.")


class CampaignInvalid(InvalidRequest):
    code = "invalid_campaign"


class PledgeInvalid(InvalidRequest):
    code = "invalid_pledge"


class CampaignNotLive(Conflict):
    code = "campaign_not_live"
    default_message = gettext_noop("This campaign is not taking pledges.")


class CampaignEnded(Conflict):
    code = "campaign_ended"
    default_message = gettext_noop("This campaign's deadline has passed: it takes no more pledges.")


class CampaignStateInvalid(Conflict):
    code = "campaign_state_invalid"


class TierSoldOut(Conflict):
    code = "tier_sold_out"
    default_message = gettext_noop("This reward is sold out.")


class PledgeStateInvalid(Conflict):
    code = "pledge_state_invalid"
