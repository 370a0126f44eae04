#!/usr/bin/env python3
"""The history web page in a real browser: Debian's chromium, headless, driven by the
system chromedriver through Python's selenium (nothing is downloaded). Logs in through
the form, opens a customer, a thread and a search, asserts what a person sees, and saves
screenshots.

Usage: history_test.py BASE_URL USER PASSWORD SCREENSHOT_DIR
(run by tests/history_web.rs, which starts `teamrelay serve` with a few conversations)
"""

import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, user, password, shots = sys.argv[1:5]


def browser(width, height):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--window-size={width},{height}"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)


def text(d):
    try:
        return d.find_element(By.TAG_NAME, "body").text
    except Exception:
        return ""


def wait_for(d, words):
    """Waits (10 s at most) until the page shows `words`: form posts return before the
    next page has loaded."""
    try:
        WebDriverWait(d, 10).until(lambda d: words in text(d))
    except Exception:
        pass
    check(words in text(d), f"the page shows {words!r}", d)


def check(cond, what, d):
    if not cond:
        print(f"FAILED: {what}\n--- page {d.current_url} ---\n{text(d)}", file=sys.stderr)
        sys.exit(1)


def run(d, suffix):
    # Without a session every page sends the browser to the login form.
    d.get(base + "/customer/cus@shop.example")
    check(d.current_url.endswith("/login"), "redirected to /login", d)
    d.find_element(By.NAME, "name").send_keys(user)
    d.find_element(By.NAME, "password").send_keys("wrong")
    d.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_for(d, "Wrong name or password.")
    d.find_element(By.NAME, "name").clear()
    d.find_element(By.NAME, "name").send_keys(user)
    d.find_element(By.NAME, "password").send_keys(password)
    d.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_for(d, "Recent customers")
    check("cus@shop.example" in text(d), "the customer is listed", d)
    d.save_screenshot(os.path.join(shots, f"index{suffix}.png"))

    d.find_element(By.LINK_TEXT, "cus@shop.example").click()
    wait_for(d, "Quote for 40 chairs")
    body = text(d)
    check("Quote for 40 chairs" in body, "the thread subject", d)
    check("<script>alert(1)</script> urgent" in body, "a <script> subject is shown as text", d)
    check(not d.find_elements(By.TAG_NAME, "script"), "no script element on the page", d)
    inbound = d.find_elements(By.CSS_SELECTOR, ".msg.inbound")
    outbound = d.find_elements(By.CSS_SELECTOR, ".msg.outbound")
    check(len(inbound) == 2 and len(outbound) == 1, "two inbound and one outbound message", d)
    check("OUTBOUND" in outbound[0].text.upper() and "alice@example.com" in outbound[0].text,
          "the outbound message shows the teammate who wrote it", d)
    d.save_screenshot(os.path.join(shots, f"customer{suffix}.png"))

    d.find_element(By.LINK_TEXT, "Quote for 40 chairs").click()
    wait_for(d, "Can we get a discount")
    body = text(d)
    check("Can we get a discount on 40 chairs?" in body, "the customer's text", d)
    check("Yes: 12% discount, as last time." in body, "the team's answer", d)
    d.save_screenshot(os.path.join(shots, f"thread{suffix}.png"))

    box = d.find_element(By.CSS_SELECTOR, "header input[type=search]")
    box.send_keys("discount")
    box.submit()
    wait_for(d, "Search: discount")
    body = text(d)
    check("Search: discount" in body, "the search page", d)
    check("Re: Quote for 40 chairs" in body and "12% discount" in body, "a hit with its snippet", d)
    d.save_screenshot(os.path.join(shots, f"search{suffix}.png"))


for (w, h, suffix) in ((1280, 900, ""), (390, 844, "-phone")):
    d = browser(w, h)
    try:
        run(d, suffix)
    finally:
        d.quit()
print("ok")
