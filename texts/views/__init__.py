"""Views of the texts app, one module per thing a marketer manages: text messages, broadcasts, keywords."""
