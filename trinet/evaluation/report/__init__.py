"""The HTML report of an evaluation (`evaluate.py --report DIR`): a static folder, opened from disk.

`collect` gathers what the report shows in the evaluation's own pass over the distances (rank lists, the
camera x camera table), `content` turns the results into the report's data (the order of the queries, their
pages, the comparison with another run), `thumbnails` and `figures` write the pictures, and `writer`
writes the folder with `page`'s HTML. numpy only at import; matplotlib and Pillow are imported when used.
"""
