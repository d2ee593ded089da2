"""The Flappy Bird test as Unsloth ran it on DeepSeek-R1's quants: the prompt, the checklist, their scores."""

from __future__ import annotations

# The user's turn, verbatim; the model's template wraps it (for DeepSeek-R1: <｜User｜>...<｜Assistant｜>).
PROMPT = """Create a Flappy Bird game in Python. You must include these things:
1. You must use pygame.
2. The background color should be randomly chosen and is a light shade. Start with a light blue color.
3. Pressing SPACE multiple times will accelerate the bird.
4. The bird's shape should be randomly chosen as a square, circle or triangle. The color should be randomly chosen as a dark color.
5. Place on the bottom some land colored as dark brown or yellow chosen randomly.
6. Make a score shown on the top right side. Increment if you pass pipes and don't hit them.
7. Make randomly spaced pipes with enough space. Color them randomly as dark green or light brown or a dark gray shade.
8. When you lose, show the best score. Make the text inside the screen. Pressing q or Esc will quit the game. Restarting is pressing SPACE again.
The final game should be inside a markdown section in Python. Check your code for errors and fix them before the final markdown section."""  # noqa: E501

# The checklist, in Unsloth's order; each item scores 0 to 1 in steps of 0.25.
ITEMS = ("Pygame", "Background", "Accelerate SPACE", "Bird shape", "Land", "Top right score", "Pipes",
         "Best Score", "Quit", "Runnable")

# Unsloth's settings for the test.
SEEDS = (3407, 3408, 3409)
TEMPERATURE = 0.6
CTX = 8192
CACHE_TYPE_K = "q4_0"

# Unsloth's published pass@3 (the mean of the three seeds' totals), "Run DeepSeek-R1 Dynamic 1.58-bit"
# (unsloth.ai/blog/deepseekr1-dynamic, January 2025), for the quants r1run's catalog holds.
PUBLISHED = {
    ("deepseek-r1", "UD-IQ1_S"): 6.92,
    ("deepseek-r1", "UD-IQ1_M"): 9.08,
    ("deepseek-r1", "UD-IQ2_XXS"): 9.17,
}
