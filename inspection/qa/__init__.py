"""QA review: what each review action does to an inspection."""
