"""What the three HTTP surfaces share: the webhooks (bot.web), the console (bot.console) and
the API (bot.api) read the request context (:mod:`bot.http.context`) and bounded bodies
(:mod:`bot.http.body`) from here, below all three, so none imports another."""
