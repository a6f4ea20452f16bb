from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length


class SignOutEverywhereForm(FlaskForm):
    pass


class SignOutUserForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=100)])
