"""The token-authenticated JSON API (`/api/v1`) and the page where its tokens are issued."""
