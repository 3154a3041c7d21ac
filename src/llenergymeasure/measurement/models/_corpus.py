"""The English text the built-in tokenizer is trained on.

Written for this project (no third-party text), varied on purpose: prose, questions, numbers,
code and punctuation, so that the byte-level BPE learns merges that real prompts use. Changing
this text changes the built-in model: bump ``BUILD_VERSION`` in ``tiny_gpt2.py`` when you do.
"""

from __future__ import annotations

CORPUS = """\
Energy is the capacity to do work. When a computer answers a question, it turns electrical
energy into heat, and a small part of that energy becomes the answer on the screen. Engineers
who build large language models want to know how much energy each answer costs, because the
same model may be asked millions of questions every day.

A language model reads a prompt as a sequence of tokens. A token is a piece of text: a whole
word, part of a word, a number, or a mark of punctuation. The model predicts the next token,
adds it to the sequence, and predicts again. Each step reads every weight of the model from
memory, so the time and the energy of a step depend on the size of the model, the length of
the sequence, the batch size, and the precision of the numbers.

How do we measure energy? On a modern graphics card, the driver keeps a counter of the energy
used since the card was switched on. We read the counter before and after the work, and the
difference is the energy in joules. On a processor, the running average power limit interface
offers similar counters for the package and for the memory. Where no counter exists, we can
only estimate, and an honest report says so.

The first question is simple: what is the average power when the machine does nothing at all?
This idle baseline is measured for ten seconds before the experiment, and it is subtracted
from the energy of the work. Then the model is loaded, a few warmup prompts run until the
throughput is steady, and only then does the measured window begin.

Throughput is the number of tokens generated per second. Latency is the time a user waits.
The time to first token tells how long the user waits before the answer starts to appear, and
the inter-token latency tells how smooth the stream of words feels. A system can have high
throughput and poor latency at the same time, for example when it collects many requests into
one large batch.

Here is a short recipe. Heat two cups of water in a pot. Add a pinch of salt and one cup of
rice. Cover the pot, lower the heat, and wait for eighteen minutes. Do not lift the lid. When
the time is up, let the rice rest for five minutes, then fluff it with a fork and serve it
with vegetables, beans, or a spoon of yogurt.

The weather today is mild, with a light wind from the west and a few clouds in the afternoon.
Tomorrow will be colder, and rain is likely in the evening. Farmers in the valley hope for
rain, since the spring was dry and the river is low. Children walk to school under bright
umbrellas, and the old man at the corner shop sells hot tea to everyone who passes.

In 1969 two astronauts walked on the Moon while a third waited in orbit. The computer that
guided their landing had about four kilobytes of erasable memory, and it ran at a speed that a
cheap watch would beat today. Yet the program was careful: when the computer was overloaded,
it dropped the least important tasks and kept the landing on course.

def mean(values):
    \"\"\"Return the arithmetic mean of a list of numbers.\"\"\"
    if not values:
        raise ValueError("mean of an empty list")
    return sum(values) / len(values)

for batch_size in [1, 2, 4, 8, 16, 32]:
    tokens_per_second = measure(model, prompts, batch_size=batch_size)
    print(f"batch {batch_size}: {tokens_per_second:.1f} tokens/s")

Questions people often ask: What is the capital of France? Paris is the capital of France.
Why is the sky blue? Sunlight is scattered by the air, and blue light is scattered more than
red light. How many days are in a leap year? There are 366 days. Who wrote the first program?
Ada Lovelace wrote notes on an engine that was never finished. Can you explain recursion?
A function is recursive when it calls itself on a smaller part of the same problem.

Please summarise the following paragraph in one sentence. Translate this sentence into French.
Write a haiku about the sea. List three reasons to learn a second language. Compare the two
approaches and recommend one. Explain the difference between a list and a tuple in Python.
Write a function that reverses a string. What are the advantages of renewable energy?

A good experiment is repeated. One run may be disturbed by a background task, a warm room, or
a busy network. Five runs give an average and a spread, and a confidence interval tells the
reader how sure we are. If two configurations differ by less than the noise, we should not
claim that one is better. Science is slow on purpose: it prefers a small true answer to a
large false one.

The library opened at nine in the morning. Students carried books, laptops, and coffee. A
librarian helped a young woman find a map of the city from the year 1850, and together they
compared the old streets with the new ones. Many names had changed, but the river, the bridge,
and the market square were still in the same place.

Memory matters as much as arithmetic. A model with seven billion parameters stored in sixteen
bits needs fourteen gigabytes just for its weights. The key and value cache grows with every
token of every sequence in the batch. When memory runs out, the batch must shrink, and the
throughput falls. Quantisation stores weights in eight or four bits, which saves memory and
often energy, but it may change the answers a little.

The cat sat by the window and watched the birds. A dog barked in the garden next door. The
kettle whistled, the clock struck four, and the letter that everyone had been waiting for
finally arrived. It said: thank you for your patience, your request has been approved, and the
results will be published next month.

SELECT name, energy_j, tokens FROM results WHERE backend = 'pytorch' ORDER BY energy_j / tokens;

{"model": "tiny-gpt2", "batch_size": 4, "precision": "float32", "energy_j": 12.5, "tokens": 1024}

Numbers: 0 1 2 3 4 5 6 7 8 9 10 12 16 20 32 50 64 100 128 256 512 1000 1024 2048 4096 3.14
2.718 0.5 0.25 99.9% 1e-3 42. Dates: 2024-01-15, March 3, 1999, the 21st century.
Punctuation: commas, periods. Questions? Exclamations! Quotes "like this" and 'like that'.
Brackets (round), [square], {curly}; colons: semicolons; dashes - and slashes / too.

Gardening teaches patience. Seeds planted in April become tomatoes in August, provided that
somebody waters them, pulls the weeds, and protects the young leaves from snails. Compost made
from kitchen scraps feeds the soil; worms do the slow, invisible work of turning it over.

The orchestra tuned their instruments while the audience found their seats. Violins, cellos,
flutes, trumpets and drums: each section followed the conductor, whose baton rose and fell
like a wave. The symphony began quietly, grew louder through the second movement, and ended
with a triumphant chord that echoed through the hall long after the musicians stopped.

Transport networks are complicated systems. Trains, buses, bicycles and pedestrians share the
streets, and a delay on one line spreads to the others. Planners collect data about journeys,
build mathematical models, and simulate what would happen if a new station were opened or an
old bridge were closed for repairs. Good planning reduces congestion, pollution and frustration.

Medicine advanced rapidly during the twentieth century. Vaccines prevented diseases that had
killed millions; antibiotics cured infections that had once been fatal; imaging machines let
doctors look inside the body without surgery. Researchers still investigate cancer, dementia
and heart disease, and clinical trials compare new treatments with existing ones.

Mathematics describes patterns. Prime numbers such as 2, 3, 5, 7, 11 and 13 have exactly two
divisors. The Fibonacci sequence begins 1, 1, 2, 3, 5, 8, 13, 21, and each term is the sum of
the two before it. Geometry studies shapes, algebra studies symbols, probability studies chance,
and statistics studies evidence: how to learn from data without fooling ourselves.

class Counter:
    def __init__(self):
        self.total = 0

    def add(self, amount: int) -> None:
        if amount < 0:
            raise ValueError("amount must be positive")
        self.total += amount

import json
with open("results.json", "w", encoding="utf-8") as handle:
    json.dump({"throughput": 153.2, "latency_ms": 41.7}, handle, indent=2)

function greet(name) {
  return `Hello, ${name}!`;
}
console.log(greet("world"));

Dear customer, we apologise for the inconvenience caused by yesterday's outage. Our engineers
identified the fault, replaced the damaged component, and restored service within three hours.
Your account has been credited automatically. If you have further questions, please contact our
support team by email or telephone; we are available every weekday between eight and six.

The mountain path climbed steeply through pine forest, past waterfalls and granite boulders,
until it reached a meadow full of yellow flowers. Hikers rested there, ate sandwiches, checked
their maps, and argued cheerfully about whether the summit was two kilometres away or four.

Economics studies how people choose under scarcity. Prices rise when demand exceeds supply;
governments collect taxes, borrow money, and spend on schools, hospitals and roads; central
banks adjust interest rates to keep inflation low. Every decision involves a trade-off, and
an opportunity cost is the value of the best alternative that was given up.

Software engineering is mostly about managing complexity. Clear names, small functions, tests
that fail when behaviour breaks, and documentation that explains why rather than what: these
habits help a team change code safely. Reviewing each other's work catches mistakes early and
spreads knowledge, so that nobody becomes the only person who understands an important module.

Astronomers estimate that the observable universe contains hundreds of billions of galaxies.
Our galaxy, the Milky Way, holds perhaps two hundred billion stars, and many of them have
planets. Telescopes measure the light of distant stars, its brightness, colour and spectrum,
and from those measurements scientists infer temperature, composition, distance and motion.

In the end, the most useful number is often the simplest one: how many joules does it take to
produce one token of a useful answer? That number depends on the model, the hardware, the
software, and the way requests arrive. Measure it carefully, write down how you measured it,
and share the method together with the result.
"""
