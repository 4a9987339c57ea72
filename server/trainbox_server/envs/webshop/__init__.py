"""The WebShop family: WebShop's text mode (Yao et al., 2022) served as instances, with its own reward.

Data. ``WEBSHOP_ROOT`` (default ``~/.cache/trainbox/webshop``) holds WebShop's files in its own layout
(``catalogue``): the products, their attributes, the human instructions and the Lucene index.
``make webshop-data`` downloads them where the internet allows and builds the index; ``generate`` builds a small
catalogue in the same format (for tests and demos). Missing data is ``DataMissing`` naming the command.

Tasks and splits. A task is a goal: one human instruction for one product, with a price cap. Task ids are goal
indices after the original's seeded shuffle (``"12"``, the original's session ``fixed_12``; both accepted).
Splits are the baseline's goal ranges: test 0-499, val 500-1499, train the rest; a catalogue with fewer than
1,500 goals splits 10 % / 20 % / 70 % in the same order.

Episode. ``create`` answers a system prompt (the action syntax) and the search page's text as the user message;
``info`` carries the instruction, ``available_actions`` (``has_search_bar``, ``clickables``) and the ``webshop``
tool. A step's action is the assistant message's text (``search[...]`` / ``click[...]``; of a longer reply, its
last line that is an action, ``Action:`` prefix allowed) or a ``webshop`` tool call's ``action``. The reply is
one message with the new page's text (``tool`` when the action was a tool call, else ``user``), exactly the
original text mode's observation (``pages``). An action the original would not take (unparsable, empty search,
a click on something not on the page) changes nothing, as in the original: the observation is the same page,
and ``info["invalid_action"]`` says why and lists the valid actions; ``info["valid"]`` is false. Clicking Buy
Now ends the episode; that step's reward is the purchase's.

Reward (``reward``): the original's attribute, option, price and type matching. ``dense`` = that reward,
``sparse`` = 1.0 when it is 1.0, else 0.0. ``evaluate(params)`` uses ``params["sparse"]``, else the ``sparse``
create param (default false: the original's reward); before a purchase both are 0.0. Details carry the
original's ``reward_info`` parts (``r_type``, ``r_att``, ``r_option``, ``r_price`` and weights), ``failed``
(which of type / attributes / options / price lost credit), the missing attributes and options, the price and
its cap, what was bought and what the goal asked for.

Create params: ``sparse`` (bool), ``show_attrs`` (bool, the original's Attributes tab; default false).

Process model. The catalogue, the index (a JVM through pyjnius: ``search``) and spaCy's model are loaded once
per worker process and shared by every instance in it; an instance is its session (a few hundred bytes plus
the last search's asins), so a process hosts many. Instances fork in process.
"""

from trainbox_server.envs.webshop.family import WebShopFamily, make_family

__all__ = ["WebShopFamily", "make_family"]
